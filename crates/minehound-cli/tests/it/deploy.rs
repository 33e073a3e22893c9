//! The deployment: the Kubernetes manifests under deploy/kubernetes, the API
//! server's ImagePolicyWebhook configuration, and the image
//! deploy/image/build.sh makes for them.
//!
//! Every manifest of a Kubernetes kind is read into its k8s-openapi type and
//! written back: those types skip fields they do not know, so any field that
//! did not survive the round trip is misspelt or misplaced, and fails here
//! instead of being dropped by the API server. The container's arguments go
//! to the real binary, and the image is built, scanned, run and pushed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount, Volume,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use minehound_testdata::registry::{Auth, RegistryProcess};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::*;

const NAMESPACE: &str = "minehound";

fn kubernetes_dir() -> PathBuf {
    repo_root().join("deploy/kubernetes")
}

/// Every YAML document in `path`, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn only_document(path: &Path) -> Value {
    let mut docs = documents(path);
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.remove(0)
}

/// Numbers as strings (quantities may be written either way) and no nulls: the
/// only differences a faithful round trip may show.
fn normalized(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, normalized(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Where `typed` (after the round trip) and `file` differ.
fn differences(typed: &Value, file: &Value, at: &str, out: &mut Vec<String>) {
    match (typed, file) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let path = format!("{at}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, &path, out),
                    (None, _) => out.push(format!(
                        "{path}: not a field of this type here (misspelt or misplaced)"
                    )),
                    (_, None) => out.push(format!("{path}: added by the round trip")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{at}[{i}]"), out);
            }
        }
        _ if typed == file => {}
        _ => out.push(format!(
            "{at}: {file} in the file, {typed} after the round trip"
        )),
    }
}

/// `doc` as the Kubernetes type `T`, provided that writing it back gives the
/// document again; else every field that did not survive.
fn typed<T>(doc: &Value) -> Result<T, String>
where
    T: DeserializeOwned + Serialize + k8s_openapi::Resource,
{
    if doc["apiVersion"] != T::API_VERSION || doc["kind"] != T::KIND {
        return Err(format!(
            "{}/{} is not {}/{}",
            doc["apiVersion"],
            doc["kind"],
            T::API_VERSION,
            T::KIND
        ));
    }
    let object: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&object).map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    differences(
        &normalized(back),
        &normalized(doc.clone()),
        T::KIND,
        &mut diffs,
    );
    if diffs.is_empty() {
        Ok(object)
    } else {
        Err(diffs.join("\n"))
    }
}

/// Everything `kubectl apply -k deploy/kubernetes` creates.
struct Manifests {
    namespace: Namespace,
    service_account: ServiceAccount,
    deployment: Deployment,
    service: Service,
    budget: PodDisruptionBudget,
    network_policy: NetworkPolicy,
    allowlist: ConfigMap,
    webhook: ValidatingWebhookConfiguration,
    /// cert-manager objects, by name.
    issuers: BTreeMap<String, Value>,
    certificates: BTreeMap<String, Value>,
    /// The files the documents came from.
    files: BTreeSet<String>,
}

/// `doc` of `file` as `T`, or a failure naming every field that did not survive.
fn parse<T>(doc: &Value, file: &str) -> T
where
    T: DeserializeOwned + Serialize + k8s_openapi::Resource,
{
    typed(doc).unwrap_or_else(|e| panic!("{file}: {}:\n{e}", T::KIND))
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &str) {
    assert!(slot.is_none(), "two {what} documents");
    *slot = Some(value);
}

fn manifests() -> Manifests {
    let dir = kubernetes_dir();
    let mut files = BTreeSet::new();
    let (mut namespace, mut service_account, mut deployment, mut service) =
        (None, None, None, None);
    let (mut budget, mut network_policy, mut allowlist, mut webhook) = (None, None, None, None);
    let (mut issuers, mut certificates) = (BTreeMap::new(), BTreeMap::new());
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        files.insert(name.clone());
        for doc in documents(&path) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "Namespace" => set_once(&mut namespace, parse(&doc, &name), &kind),
                "ServiceAccount" => set_once(&mut service_account, parse(&doc, &name), &kind),
                "Deployment" => set_once(&mut deployment, parse(&doc, &name), &kind),
                "Service" => set_once(&mut service, parse(&doc, &name), &kind),
                "PodDisruptionBudget" => set_once(&mut budget, parse(&doc, &name), &kind),
                "NetworkPolicy" => set_once(&mut network_policy, parse(&doc, &name), &kind),
                "ConfigMap" => set_once(&mut allowlist, parse(&doc, &name), &kind),
                "ValidatingWebhookConfiguration" => {
                    set_once(&mut webhook, parse(&doc, &name), &kind)
                }
                "Issuer" | "Certificate" => {
                    assert_eq!(doc["apiVersion"], "cert-manager.io/v1", "{name}: {kind}");
                    assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{name}: {kind}");
                    let key = doc["metadata"]["name"].as_str().unwrap().to_string();
                    let map = if kind == "Issuer" {
                        &mut issuers
                    } else {
                        &mut certificates
                    };
                    assert!(
                        map.insert(key, doc).is_none(),
                        "{name}: two {kind}s so named"
                    );
                }
                _ => panic!("{name}: a {kind:?} document this test does not check"),
            }
        }
    }
    Manifests {
        namespace: namespace.expect("a Namespace"),
        service_account: service_account.expect("a ServiceAccount"),
        deployment: deployment.expect("a Deployment"),
        service: service.expect("a Service"),
        budget: budget.expect("a PodDisruptionBudget"),
        network_policy: network_policy.expect("a NetworkPolicy"),
        allowlist: allowlist.expect("a ConfigMap"),
        webhook: webhook.expect("a ValidatingWebhookConfiguration"),
        issuers,
        certificates,
        files,
    }
}

impl Manifests {
    fn pod(&self) -> &PodSpec {
        self.deployment.spec.template.spec.as_ref().unwrap()
    }

    fn container(&self) -> &Container {
        let containers = &self.pod().containers;
        assert_eq!(containers.len(), 1, "one container");
        &containers[0]
    }

    fn args(&self) -> &[String] {
        self.container().args.as_deref().unwrap()
    }

    /// The values of `--name=VALUE` in the container's arguments.
    fn flag(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}=");
        self.args()
            .iter()
            .filter_map(|a| a.strip_prefix(&prefix))
            .collect()
    }

    fn one_flag(&self, name: &str) -> &str {
        let values = self.flag(name);
        assert_eq!(values.len(), 1, "{name} given once: {values:?}");
        values[0]
    }

    fn volume(&self, name: &str) -> &Volume {
        self.pod()
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("volume {name}"))
    }

    /// The volume mounted at `path` and whether it is read-only.
    fn mount(&self, path: &str) -> (&Volume, bool) {
        let mount = self
            .container()
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        (self.volume(&mount.name), mount.read_only == Some(true))
    }

    /// The labels on the pods.
    fn pod_labels(&self) -> &BTreeMap<String, String> {
        self.deployment
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()
    }

    fn selects_the_pods(&self, selector: &BTreeMap<String, String>) -> bool {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| self.pod_labels().get(k) == Some(v))
    }

    /// The Certificate whose Secret the pods mount for TLS.
    fn serving_certificate(&self) -> (&String, &Value) {
        let (tls, _) = self.mount(
            Path::new(self.one_flag("--tls-cert"))
                .parent()
                .unwrap()
                .to_str()
                .unwrap(),
        );
        let secret = tls.secret.as_ref().unwrap().secret_name.as_deref().unwrap();
        self.certificates
            .iter()
            .find(|(_, c)| c["spec"]["secretName"] == secret)
            .unwrap_or_else(|| panic!("no Certificate writes the Secret {secret}"))
    }

    /// `name.namespace.svc` of the Service.
    fn service_host(&self) -> String {
        let meta = &self.service.metadata;
        format!(
            "{}.{}.svc",
            meta.name.as_deref().unwrap(),
            meta.namespace.as_deref().unwrap()
        )
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not a map: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn manifests_survive_a_typed_round_trip() {
    let m = manifests();
    for (name, meta) in [
        ("ServiceAccount", &m.service_account.metadata),
        ("Deployment", &m.deployment.metadata),
        ("Service", &m.service.metadata),
        ("PodDisruptionBudget", &m.budget.metadata),
        ("NetworkPolicy", &m.network_policy.metadata),
        ("ConfigMap", &m.allowlist.metadata),
    ] {
        assert_eq!(meta.namespace.as_deref(), Some(NAMESPACE), "{name}");
    }
    assert_eq!(m.namespace.metadata.name.as_deref(), Some(NAMESPACE));
    assert!(m.webhook.metadata.namespace.is_none(), "cluster-scoped");

    // The check catches what it is there for: a misspelt field, a field one
    // level off, a value of the wrong type.
    let dir = kubernetes_dir();
    let deployment = documents(&dir.join("deployment.yaml")).remove(0);
    assert!(typed::<Deployment>(&deployment).is_ok());
    let mut misspelt = deployment.clone();
    misspelt["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] =
        Value::Bool(true);
    let error = typed::<Deployment>(&misspelt).unwrap_err();
    assert!(error.contains("readOnlyRootFileSystem"), "{error}");
    let mut misplaced = deployment.clone();
    misplaced["spec"]["template"]["spec"]["readOnlyRootFilesystem"] = Value::Bool(true);
    assert!(typed::<Deployment>(&misplaced).is_err());
    let mut wrong_type = deployment;
    wrong_type["spec"]["replicas"] = Value::String("two".into());
    assert!(typed::<Deployment>(&wrong_type).is_err());
    let webhook = only_document(&dir.join("validatingwebhookconfiguration.yaml"));
    assert!(typed::<Deployment>(&webhook).is_err(), "kinds are checked");
    let mut misspelt = webhook.clone();
    misspelt["webhooks"][0]["timeoutSecond"] = Value::from(10);
    assert!(typed::<ValidatingWebhookConfiguration>(&misspelt).is_err());
}

#[test]
fn kustomization_lists_every_manifest() {
    let m = manifests();
    let kustomization = only_document(&kubernetes_dir().join("kustomization.yaml"));
    assert_eq!(
        keys(&kustomization),
        BTreeSet::from(["apiVersion", "kind", "namespace", "resources"])
    );
    assert_eq!(
        kustomization["apiVersion"],
        "kustomize.config.k8s.io/v1beta1"
    );
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(kustomization["namespace"], NAMESPACE);
    let resources: Vec<&str> = strings(&kustomization["resources"]);
    let listed: BTreeSet<String> = resources.iter().map(|r| r.to_string()).collect();
    assert_eq!(listed.len(), resources.len(), "listed twice: {resources:?}");
    assert_eq!(listed, m.files);
    // The Namespace comes first, so a plain `kubectl apply -f` of the list works too.
    assert_eq!(resources[0], "namespace.yaml");
}

#[test]
fn webhook_judges_pods_and_pod_templates_and_fails_closed() {
    let m = manifests();
    let webhooks = m.webhook.webhooks.as_ref().unwrap();
    assert_eq!(webhooks.len(), 1);
    let hook = &webhooks[0];
    assert_eq!(hook.name, "images.minehound.io");
    assert_eq!(hook.admission_review_versions, ["v1"]);
    assert_eq!(hook.side_effects, "NoneOnDryRun");
    assert_eq!(hook.timeout_seconds, Some(10));
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));

    // The service answers within its budget, before the API server gives up.
    let budget = m.one_flag("--admission-budget");
    let budget: u32 = budget.strip_suffix('s').unwrap().parse().unwrap();
    assert!(
        budget < 10,
        "--admission-budget={budget}s within timeoutSeconds"
    );

    // It calls the Service, which forwards to the container's HTTPS port.
    let service = hook.client_config.service.as_ref().unwrap();
    assert_eq!(Some(&service.name), m.service.metadata.name.as_ref());
    assert_eq!(service.namespace, NAMESPACE);
    assert_eq!(service.path.as_deref(), Some("/k8s/admission"));
    assert_eq!(service.port, Some(443));
    assert!(hook.client_config.url.is_none() && hook.client_config.ca_bundle.is_none());
    let spec = m.service.spec.as_ref().unwrap();
    assert!(m.selects_the_pods(spec.selector.as_ref().unwrap()));
    let ports = spec.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 443);
    assert_eq!(
        container_port(&m, ports[0].target_port.as_ref().unwrap()),
        8443
    );
    assert_eq!(m.one_flag("--listen"), "0.0.0.0:8443");

    // cert-manager puts the CA of the serving certificate into the webhook.
    let (certificate, _) = m.serving_certificate();
    let annotations = m.webhook.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations["cert-manager.io/inject-ca-from"],
        format!("{NAMESPACE}/{certificate}")
    );
    assert_eq!(certificate, "minehound");

    // The control plane's namespaces and minehound's own are never judged.
    let selector = hook.namespace_selector.as_ref().unwrap();
    assert!(selector.match_labels.is_none());
    let expressions = selector.match_expressions.as_ref().unwrap();
    let by_name = expressions
        .iter()
        .find(|e| e.key == "kubernetes.io/metadata.name")
        .unwrap();
    assert_eq!(by_name.operator, "NotIn");
    let exempt: BTreeSet<&str> = by_name
        .values
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(
        exempt,
        BTreeSet::from(["kube-system", "kube-public", "kube-node-lease", NAMESPACE])
    );
    // The opt-out label the README names.
    let opt_out = expressions
        .iter()
        .find(|e| e.key == "minehound.io/admission")
        .unwrap();
    assert_eq!(opt_out.operator, "NotIn");
    assert_eq!(
        opt_out.values.as_deref(),
        Some(&["disabled".to_string()][..])
    );
    assert_eq!(expressions.len(), 2);
    assert!(hook.object_selector.is_none());

    // Pods, ephemeral containers, and everything that carries a pod template.
    let mut resources = BTreeSet::new();
    for rule in hook.rules.as_ref().unwrap() {
        let operations: BTreeSet<&str> = rule
            .operations
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        assert_eq!(operations, BTreeSet::from(["CREATE", "UPDATE"]), "{rule:?}");
        assert_eq!(rule.scope.as_deref(), Some("Namespaced"));
        for group in rule.api_groups.iter().flatten() {
            for version in rule.api_versions.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    let triple = (group.as_str(), version.as_str(), resource.as_str());
                    assert!(resources.insert(triple), "twice: {triple:?}");
                }
            }
        }
    }
    let expected = BTreeSet::from([
        ("", "v1", "pods"),
        ("", "v1", "pods/ephemeralcontainers"),
        ("", "v1", "replicationcontrollers"),
        ("apps", "v1", "deployments"),
        ("apps", "v1", "replicasets"),
        ("apps", "v1", "statefulsets"),
        ("apps", "v1", "daemonsets"),
        ("batch", "v1", "jobs"),
        ("batch", "v1", "cronjobs"),
        ("kubeflow.org", "v1", "notebooks"),
        ("kubeflow.org", "v1beta1", "notebooks"),
    ]);
    assert_eq!(resources, expected);
}

fn container_port(m: &Manifests, port: &IntOrString) -> i32 {
    let ports = m.container().ports.as_ref().unwrap();
    match port {
        IntOrString::Int(n) => {
            ports
                .iter()
                .find(|p| p.container_port == *n)
                .unwrap_or_else(|| panic!("no container port {n}"))
                .container_port
        }
        IntOrString::String(name) => {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    }
}

#[test]
fn certificates_name_the_service_and_chain_to_a_stable_ca() {
    let m = manifests();
    let (_, serving) = m.serving_certificate();
    let spec = &serving["spec"];
    let known = BTreeSet::from([
        "secretName",
        "secretTemplate",
        "commonName",
        "dnsNames",
        "ipAddresses",
        "uris",
        "emailAddresses",
        "duration",
        "renewBefore",
        "privateKey",
        "usages",
        "issuerRef",
        "isCA",
        "subject",
        "revisionHistoryLimit",
    ]);
    for certificate in m.certificates.values() {
        let spec = &certificate["spec"];
        assert!(keys(spec).is_subset(&known), "{spec}");
        assert!(
            keys(&spec["privateKey"]).is_subset(&BTreeSet::from([
                "algorithm",
                "size",
                "encoding",
                "rotationPolicy"
            ])),
            "{spec}"
        );
        // rustls reads PKCS#8 keys.
        assert_eq!(spec["privateKey"]["encoding"], "PKCS8");
        // Every certificate's issuer is one of these Issuers.
        let issuer = &spec["issuerRef"];
        assert_eq!(keys(issuer), BTreeSet::from(["group", "kind", "name"]));
        assert_eq!(issuer["kind"], "Issuer");
        assert_eq!(issuer["group"], "cert-manager.io");
        assert!(
            m.issuers.contains_key(issuer["name"].as_str().unwrap()),
            "{issuer}"
        );
    }
    let host = m.service_host();
    assert_eq!(host, "minehound.minehound.svc");
    let names = strings(&spec["dnsNames"]);
    assert!(names.contains(&host.as_str()), "{names:?}");
    assert!(names.contains(&format!("{host}.cluster.local").as_str()));
    assert_eq!(spec["secretName"], "minehound-tls");
    assert!(strings(&spec["usages"]).contains(&"server auth"));
    assert_eq!(spec["privateKey"]["rotationPolicy"], "Always");
    assert!(spec.get("isCA").is_none_or(|v| v == false));

    // The serving certificate comes from a CA issuer whose CA a self-signed
    // issuer made once: renewals keep ca.crt, so the ImagePolicyWebhook's
    // copy of it stays valid.
    let ca_issuer = &m.issuers[spec["issuerRef"]["name"].as_str().unwrap()];
    assert_eq!(keys(&ca_issuer["spec"]), BTreeSet::from(["ca"]));
    let ca_secret = &ca_issuer["spec"]["ca"]["secretName"];
    let (_, ca) = m
        .certificates
        .iter()
        .find(|(_, c)| &c["spec"]["secretName"] == ca_secret)
        .expect("a Certificate makes the CA");
    assert_eq!(ca["spec"]["isCA"], true);
    let root = &m.issuers[ca["spec"]["issuerRef"]["name"].as_str().unwrap()];
    assert_eq!(root["spec"], serde_json::json!({ "selfSigned": {} }));
}

#[test]
fn deployment_runs_two_hardened_replicas_with_https_probes() {
    let m = manifests();
    let spec = &m.deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    assert!(m.selects_the_pods(spec.selector.match_labels.as_ref().unwrap()));
    let rolling = spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));

    // No API access at all.
    assert_eq!(
        m.service_account.automount_service_account_token,
        Some(false)
    );
    let pod = m.pod();
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(
        pod.service_account_name.as_ref(),
        m.service_account.metadata.name.as_ref()
    );

    // Replicas on different nodes.
    let spread = pod.topology_spread_constraints.as_ref().unwrap();
    let by_node = spread
        .iter()
        .find(|c| c.topology_key == "kubernetes.io/hostname")
        .unwrap();
    assert_eq!(by_node.when_unsatisfiable, "DoNotSchedule");
    assert_eq!(by_node.max_skew, 1);
    let selector = by_node.label_selector.as_ref().unwrap();
    assert!(m.selects_the_pods(selector.match_labels.as_ref().unwrap()));

    // Non-root, read-only, nothing to escalate with.
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    assert_eq!(pod_security.run_as_group, Some(65532));
    assert_eq!(
        pod_security.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    let container = m.container();
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(65532));
    assert_eq!(security.run_as_group, Some(65532));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.privileged, Some(false));
    let capabilities = security.capabilities.as_ref().unwrap();
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(capabilities.add.is_none());
    assert_eq!(
        security.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );

    // The image is a placeholder kustomize `images:` replaces, by this name.
    assert_eq!(container.image.as_deref(), Some("minehound:latest"));

    // Probes over HTTPS on the service's port.
    for (probe, path) in [
        (container.readiness_probe.as_ref(), "/readyz"),
        (container.liveness_probe.as_ref(), "/healthz"),
    ] {
        let get = probe.unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(container_port(&m, &get.port), 8443);
    }

    // Requests and limits for CPU and memory.
    let resources = container.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    let limits = resources.limits.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "250m");
    assert_eq!(requests["memory"].0, "512Mi");
    assert_eq!(limits["cpu"].0, "2");
    assert_eq!(limits["memory"].0, "1Gi");

    // The read-only root: every place the service writes is an emptyDir.
    let env = container.env.as_ref().unwrap();
    let env_value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
            .unwrap_or_else(|| panic!("env {name}"))
    };
    for path in [
        m.one_flag("--state-dir"),
        m.one_flag("--cache-dir"),
        env_value("TMPDIR"),
    ] {
        let (volume, read_only) = m.mount(path);
        assert!(volume.empty_dir.is_some() && !read_only, "{path}");
    }
    assert_eq!(m.one_flag("--state-dir"), "/var/lib/minehound");
    assert_eq!(m.one_flag("--cache-dir"), "/var/cache/minehound");
    assert_eq!(env_value("TMPDIR"), "/tmp");

    // The TLS Secret, read-only, where --tls-cert and --tls-key point.
    let cert = Path::new(m.one_flag("--tls-cert"));
    let key = Path::new(m.one_flag("--tls-key"));
    assert_eq!(cert.parent(), key.parent());
    assert_eq!(cert.file_name().unwrap(), "tls.crt");
    assert_eq!(key.file_name().unwrap(), "tls.key");
    let (tls, read_only) = m.mount(cert.parent().unwrap().to_str().unwrap());
    assert!(read_only);
    let tls = tls.secret.as_ref().unwrap();
    assert_eq!(tls.secret_name.as_deref(), Some("minehound-tls"));
    assert_ne!(tls.optional, Some(true));

    // Registry credentials: an optional dockerconfigjson Secret as
    // $DOCKER_CONFIG/config.json.
    let (docker, read_only) = m.mount(env_value("DOCKER_CONFIG"));
    assert!(read_only);
    let docker = docker.secret.as_ref().unwrap();
    assert_eq!(docker.optional, Some(true));
    let items = docker.items.as_ref().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].key, ".dockerconfigjson");
    assert_eq!(items[0].path, "config.json");

    // The allowlist ConfigMap, where --allowlist points.
    let allowlist = Path::new(m.one_flag("--allowlist"));
    let (volume, read_only) = m.mount(allowlist.parent().unwrap().to_str().unwrap());
    assert!(read_only);
    let config_map = volume.config_map.as_ref().unwrap();
    assert_eq!(config_map.name, m.allowlist.metadata.name.clone().unwrap());
    let key = allowlist.file_name().unwrap().to_str().unwrap();
    assert!(
        m.allowlist.data.as_ref().unwrap().contains_key(key),
        "{key}"
    );

    // The service's own namespace is exempt, from the downward API.
    assert_eq!(m.flag("--admission-exempt-namespace"), ["$(POD_NAMESPACE)"]);
    // The database URL comes from a Secret (never the manifest), and is optional.
    let database = env
        .iter()
        .find(|e| e.name == "MINEHOUND_DATABASE_URL")
        .unwrap();
    let secret = database
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("the database URL comes from a Secret");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("minehound-database", "url")
    );
    assert_eq!(secret.optional, Some(true));
    assert!(database.value.is_none());
    let pod_namespace = env.iter().find(|e| e.name == "POD_NAMESPACE").unwrap();
    let field = pod_namespace
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field.field_path, "metadata.namespace");
    // Kubernetes expands $(VAR) only for variables defined before the use.
    for arg in m.args() {
        if let Some((_, rest)) = arg.split_once("$(") {
            let var = rest.split_once(')').unwrap().0;
            assert!(env.iter().any(|e| e.name == var), "{arg}: {var} is not set");
        }
    }

    // The policies the README describes.
    assert_eq!(m.one_flag("--admission-pending"), "deny");
    assert_eq!(m.one_flag("--admission-unresolved"), "deny");
    assert_eq!(m.one_flag("--admission-fail-on"), "high");
    assert_eq!(m.one_flag("--log-format"), "json");

    // One replica always stays through drains.
    let budget = m.budget.spec.as_ref().unwrap();
    assert_eq!(budget.min_available, Some(IntOrString::Int(1)));
    assert!(
        m.selects_the_pods(
            budget
                .selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()
        )
    );

    // The Namespace enforces the restricted Pod Security Standard.
    assert_eq!(
        m.namespace.metadata.labels.as_ref().unwrap()["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn network_policy_opens_the_https_port_and_registry_egress_only() {
    let m = manifests();
    let spec = m.network_policy.spec.as_ref().unwrap();
    assert!(
        m.selects_the_pods(
            spec.pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()
        )
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    let ingress = spec.ingress.as_ref().unwrap();
    assert_eq!(ingress.len(), 1);
    let ports = ingress[0].ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(container_port(&m, ports[0].port.as_ref().unwrap()), 8443);
    let mut egress = BTreeSet::new();
    for rule in spec.egress.as_ref().unwrap() {
        for port in rule.ports.as_ref().expect("egress limited by port") {
            let IntOrString::Int(n) = port.port.as_ref().unwrap() else {
                panic!("numeric ports")
            };
            egress.insert((port.protocol.clone().unwrap(), *n));
        }
    }
    assert_eq!(
        egress,
        BTreeSet::from([
            ("UDP".to_string(), 53),
            ("TCP".to_string(), 53),
            ("TCP".to_string(), 443),
            ("TCP".to_string(), 5000),
            ("TCP".to_string(), 5432),
        ])
    );
}

#[test]
fn deployment_args_are_accepted_by_the_binary() {
    let m = manifests();
    let args: Vec<String> = m
        .args()
        .iter()
        .map(|a| a.replace("$(POD_NAMESPACE)", NAMESPACE))
        .collect();
    // args replace the image's Cmd and keep its Entrypoint (/usr/bin/minehound).
    assert!(m.container().command.is_none());
    assert_eq!(args[0], "serve");
    for arg in &args[1..] {
        assert!(
            arg.starts_with("--") && arg.contains('='),
            "{arg}: --flag=value"
        );
    }
    assert_command_line_accepted(&args);
    // ...as it would refuse a flag that does not exist.
    minehound()
        .args(&args)
        .args(["--admission-no-such-flag=1", "--print-openapi"])
        .assert()
        .code(2);

    // The README names every admission flag the Deployment sets, and its
    // overlay patch replaces the argument it says it does.
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    for arg in &args[1..] {
        let flag = arg.split_once('=').unwrap().0;
        if flag.starts_with("--admission-") {
            assert!(readme.contains(flag), "README.md: {flag}");
        }
    }
    let patch = readme
        .split_once("path: /spec/template/spec/containers/0/args/")
        .unwrap()
        .1;
    let (index, rest) = patch.split_once('\n').unwrap();
    let value = rest.trim_start().strip_prefix("value: ").unwrap();
    let value = value.lines().next().unwrap();
    let (flag, _) = value.split_once('=').unwrap();
    let index: usize = index.parse().unwrap();
    assert!(
        args[index].starts_with(&format!("{flag}=")),
        "args[{index}] is {}",
        args[index]
    );
    let mut patched = args.clone();
    patched[index] = value.to_string();
    minehound()
        .args(&patched)
        .arg("--print-openapi")
        .assert()
        .success();
}

/// The allowlist in the ConfigMap, and its examples with the comment signs
/// removed (as the ConfigMap's own comment says).
fn allowlist_texts(m: &Manifests) -> (String, String) {
    let text = m.allowlist.data.as_ref().unwrap()["allowlist.yaml"].clone();
    let mut examples = String::new();
    let mut in_examples = false;
    for line in text.lines() {
        in_examples |= line == "# allow:";
        if in_examples {
            let line = line
                .strip_prefix("# ")
                .or_else(|| line.strip_prefix('#'))
                .unwrap_or_else(|| panic!("an example line without '# ': {line}"));
            examples.push_str(line);
            examples.push('\n');
        }
    }
    (text, examples)
}

#[test]
fn allowlist_and_its_examples_are_read_by_the_binary() {
    let m = manifests();
    let (active, examples) = allowlist_texts(&m);
    let doc: Value = serde_yaml_ng::from_str(&active).unwrap();
    assert_eq!(doc, serde_json::json!({ "allow": [] }), "allows nothing");
    let example: Value = serde_yaml_ng::from_str(&examples).unwrap();
    let entries = example["allow"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["image"].is_string() && e["expires"].is_string())
    );
    assert!(
        entries
            .iter()
            .any(|e| e["image"].is_string() && e["digest"].is_string())
    );

    let dir = tempfile::tempdir().unwrap();
    let clean = ImageSpec {
        layers: vec![Layer::gzip(
            "ADD hello /",
            vec![Entry::file("/etc/motd", "hello\n")],
        )],
        ..ImageSpec::default()
    }
    .build();
    write_oci_layout(&dir.path().join("img"), &[(&clean, None)]).unwrap();
    let target = format!("oci:{}", dir.path().join("img").display());
    for (name, text) in [("active.yaml", &active), ("examples.yaml", &examples)] {
        let file = dir.path().join(name);
        fs::write(&file, text).unwrap();
        let output = minehound()
            .args(["scan", "-q", "--allowlist"])
            .arg(&file)
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn image_policy_webhook_configuration_names_its_kubeconfig() {
    let dir = kubernetes_dir().join("imagepolicy");
    let admission = only_document(&dir.join("admission-configuration.yaml"));
    assert_eq!(admission["apiVersion"], "apiserver.config.k8s.io/v1");
    assert_eq!(admission["kind"], "AdmissionConfiguration");
    assert_eq!(
        keys(&admission),
        BTreeSet::from(["apiVersion", "kind", "plugins"])
    );
    let plugins = admission["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0]["name"], "ImagePolicyWebhook");
    assert_eq!(keys(&plugins[0]), BTreeSet::from(["name", "configuration"]));
    // The API server's Go struct ignores unknown keys: the set is checked here.
    let policy = &plugins[0]["configuration"]["imagePolicy"];
    assert_eq!(
        keys(&plugins[0]["configuration"]),
        BTreeSet::from(["imagePolicy"])
    );
    assert_eq!(
        keys(policy),
        BTreeSet::from([
            "kubeConfigFile",
            "allowTTL",
            "denyTTL",
            "retryBackoff",
            "defaultAllow"
        ])
    );
    assert_eq!(policy["defaultAllow"], false);
    // The API server refuses TTLs outside (1 s, 30 min] and backoffs over 5 min.
    for key in ["allowTTL", "denyTTL"] {
        let seconds = policy[key].as_u64().unwrap();
        assert!((2..=1800).contains(&seconds), "{key}: {seconds}");
    }
    let backoff = policy["retryBackoff"].as_u64().unwrap();
    assert!(
        (1..=300_000).contains(&backoff),
        "retryBackoff: {backoff} ms"
    );
    assert!(policy["denyTTL"].as_u64() < policy["allowTTL"].as_u64());

    // The kubeconfig it names is the one beside it.
    let path = Path::new(policy["kubeConfigFile"].as_str().unwrap());
    assert!(path.is_absolute());
    let kubeconfig = only_document(&dir.join(path.file_name().unwrap()));
    assert_eq!(kubeconfig["apiVersion"], "v1");
    assert_eq!(kubeconfig["kind"], "Config");
    assert_eq!(
        keys(&kubeconfig),
        BTreeSet::from([
            "apiVersion",
            "kind",
            "clusters",
            "users",
            "contexts",
            "current-context"
        ])
    );
    let current = kubeconfig["current-context"].as_str().unwrap();
    let find = |list: &str, name: &str| -> Value {
        kubeconfig[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{list}: no {name}"))
            .clone()
    };
    let context = find("contexts", current)["context"].clone();
    assert_eq!(keys(&context), BTreeSet::from(["cluster", "user"]));
    find("users", context["user"].as_str().unwrap());
    let cluster = find("clusters", context["cluster"].as_str().unwrap())["cluster"].clone();
    assert_eq!(
        keys(&cluster),
        BTreeSet::from(["server", "certificate-authority"])
    );
    // The CA file sits beside the two files on the control-plane node.
    let ca = Path::new(cluster["certificate-authority"].as_str().unwrap());
    assert_eq!(ca.parent(), path.parent());
    // The server is the Service, at the ImageReview endpoint, with a name the
    // serving certificate holds.
    let m = manifests();
    assert_eq!(
        cluster["server"],
        format!("https://{}/k8s/imagereview", m.service_host())
    );
    assert_eq!(
        m.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        443
    );

    // The README there says how to wire it.
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    for needle in [
        "--admission-control-config-file",
        "--enable-admission-plugins",
        "ImagePolicyWebhook",
        path.file_name().unwrap().to_str().unwrap(),
        "admission-configuration.yaml",
        ca.file_name().unwrap().to_str().unwrap(),
    ] {
        assert!(readme.contains(needle), "imagepolicy/README.md: {needle}");
    }
}

// --- the image -----------------------------------------------------------

fn build_image(out: &Path, reference: Option<&str>) -> String {
    let bin = assert_cmd::cargo::cargo_bin("minehound");
    let mut cmd = Process::new("bash");
    cmd.arg(repo_root().join("deploy/image/build.sh"))
        .arg(&bin)
        .arg(out)
        .args(reference)
        .env("MINEHOUND_NO_CACHE", "true")
        .env_remove("SOURCE_DATE_EPOCH");
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "build.sh: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn read_json(path: &Path) -> Value {
    json_of(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The blob a descriptor names, checked against its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(format!("{:x}", Sha256::digest(&bytes)), hex);
    assert_eq!(descriptor["size"].as_u64(), Some(bytes.len() as u64));
    bytes
}

fn run_checked(cmd: &mut Process) -> Output {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `args` inside `rootfs` as the image's user with the image's
/// environment: chroot as root, else in a user namespace.
fn run_in_image(rootfs: &Path, config: &Value, args: &[&str]) -> Output {
    let uid = run_checked(Process::new("id").arg("-u")).stdout;
    let mut cmd = if String::from_utf8_lossy(&uid).trim() == "0" {
        let mut cmd = Process::new("chroot");
        cmd.arg(format!(
            "--userspec={}",
            config["config"]["User"].as_str().unwrap()
        ));
        cmd
    } else {
        let mut cmd = Process::new("unshare");
        cmd.args(["--user", "--map-root-user", "chroot"]);
        cmd
    };
    cmd.arg(rootfs).args(args).env_clear();
    for pair in strings(&config["config"]["Env"]) {
        let (key, value) = pair.split_once('=').unwrap();
        cmd.env(key, value);
    }
    cmd.env("MINEHOUND_NO_CACHE", "true");
    cmd.output().unwrap()
}

/// deploy/image/build.sh turns the release binary into an OCI image layout
/// that is valid, deterministic, scans clean, runs as user 65532 from its own
/// files, and is pushed only through `minehound push`.
#[test]
fn image_build_makes_a_clean_runnable_deterministic_layout_and_pushes_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let stdout = build_image(&layout, None);
    let layout = layout.canonicalize().unwrap();
    assert!(
        stdout.contains(&format!("layout: {}", layout.display())),
        "{stdout}"
    );
    assert!(stdout.contains("MiB compressed"), "{stdout}");

    // The layout, by hand: every blob matches its digest and size.
    assert_eq!(
        read_json(&layout.join("oci-layout")),
        serde_json::json!({ "imageLayoutVersion": "1.0.0" })
    );
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let descriptors = index["manifests"].as_array().unwrap();
    assert_eq!(descriptors.len(), 1);
    let descriptor = &descriptors[0];
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let manifest = json_of(&blob(&layout, descriptor));
    assert_eq!(manifest["mediaType"], descriptor["mediaType"]);
    let config_bytes = blob(&layout, &manifest["config"]);
    let config = json_of(&config_bytes);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gzipped = blob(&layout, &layers[0]);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut tar).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!("sha256:{:x}", Sha256::digest(&tar))])
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(
        descriptor["platform"]["architecture"],
        config["architecture"]
    );
    assert_eq!(config["history"].as_array().unwrap().len(), 1);

    // What the Deployment relies on: the entrypoint its args follow, the
    // user its securityContext names, the CA file.
    let image = &config["config"];
    assert_eq!(
        image["Entrypoint"],
        serde_json::json!(["/usr/bin/minehound"])
    );
    assert_eq!(image["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(image["User"], "65532:65532");
    let env = strings(&image["Env"]);
    assert!(env.iter().any(|e| e.starts_with("PATH=/")), "{env:?}");
    assert!(env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"));
    let m = manifests();
    assert_eq!(m.args()[0], image["Cmd"][0]);

    // The tar: sorted, owner 0, mtime 0, numeric ids.
    let listing = run_checked(
        Process::new("tar")
            .args([
                "--list",
                "--verbose",
                "--numeric-owner",
                "--utc",
                "--gzip",
                "--file",
            ])
            .arg(
                layout.join("blobs/sha256").join(
                    layers[0]["digest"]
                        .as_str()
                        .unwrap()
                        .strip_prefix("sha256:")
                        .unwrap(),
                ),
            ),
    )
    .stdout;
    let listing = String::from_utf8(listing).unwrap();
    let mut names = Vec::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "0/0", "{line}");
        assert_eq!(&fields[3..5], ["1970-01-01", "00:00"], "{line}");
        names.push(fields[5]);
    }
    // Sorted by name as the files are (a directory without its "/").
    let order: Vec<&str> = names.iter().map(|n| n.trim_end_matches('/')).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted);
    for needed in [
        "usr/bin/minehound",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "etc/group",
        "tmp/",
    ] {
        assert!(names.contains(&needed), "{needed} in {names:?}");
    }

    // Unpacked: the passwd and group lines, and an ELF count to hold the
    // scan's stats against.
    let rootfs = dir.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    run_checked(
        Process::new("tar")
            .args(["--extract", "--gzip", "--file"])
            .arg(
                layout.join("blobs/sha256").join(
                    layers[0]["digest"]
                        .as_str()
                        .unwrap()
                        .strip_prefix("sha256:")
                        .unwrap(),
                ),
            )
            .arg("--directory")
            .arg(&rootfs),
    );
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("nonroot:x:65532:")),
        "{group}"
    );
    let (mut files, mut elves) = (0u64, 0u64);
    let mut pending = vec![rootfs.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                elves += u64::from(fs::read(entry.path()).unwrap().starts_with(b"\x7fELF"));
            }
        }
    }
    // The binary, and at least libc and the loader beside it.
    assert!(elves >= 3, "{elves} ELF files");

    // minehound scans its own image clean, every file read.
    let report = scan_json(
        &[
            "scan",
            "-q",
            "--format",
            "json",
            &format!("oci:{}", layout.display()),
        ],
        None,
        0,
    );
    assert_eq!(report["findings"], serde_json::json!([]), "{report}");
    let stats = &report["stats"];
    assert_eq!(stats["files"], files, "{stats}");
    assert_eq!(stats["files_scanned"], files, "{stats}");
    assert_eq!(stats["files_skipped"], 0, "{stats}");
    assert_eq!(stats["elf_files"], elves, "{stats}");
    assert_eq!(report["images"][0]["manifest_digest"], descriptor["digest"]);

    // The image runs: its binary starts from the image's own loader and
    // libraries, as user 65532, and scans a file in there.
    let version = run_in_image(&rootfs, &config, &["/usr/bin/minehound", "--version"]);
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    let inside = run_in_image(
        &rootfs,
        &config,
        &[
            "/usr/bin/minehound",
            "scan",
            "-q",
            "--format",
            "json",
            "/etc/passwd",
        ],
    );
    assert!(
        inside.status.success(),
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    assert_eq!(json_of(&inside.stdout)["stats"]["files"], 1);

    // Built again, now pushed: the same digests (the build is
    // deterministic), the tag from the reference, and the registry serves it.
    let registry = RegistryProcess::start(
        &dir.path().join("work"),
        &dir.path().join("storage"),
        None,
        &Auth::None,
    )
    .unwrap();
    let reference = format!("{}/platform/minehound:0.1.0", registry.host);
    let again = dir.path().join("again");
    let stdout = build_image(&again, Some(&reference));
    assert!(stdout.contains(&format!("pushed: {reference}")), "{stdout}");
    let index_again = read_json(&again.join("index.json"));
    let descriptor_again = &index_again["manifests"][0];
    assert_eq!(descriptor_again["digest"], descriptor["digest"]);
    assert_eq!(
        descriptor_again["annotations"]["org.opencontainers.image.ref.name"],
        "0.1.0"
    );
    let pulled = scan_json(&["scan", "-q", "--format", "json", &reference], None, 0);
    assert_eq!(pulled["images"][0]["manifest_digest"], descriptor["digest"]);
    assert_eq!(pulled["findings"], serde_json::json!([]));
}
