//! What an object asks the cluster to run: the containers of every pod
//! template it carries, their images and how each is launched, and what an
//! update adds to the object it replaces.
//!
//! Pod templates are found by shape, not by kind: a Pod's `spec`, a
//! workload's `spec.template.spec`, a CronJob's
//! `spec.jobTemplate.spec.template.spec`, a Notebook's or a training job's
//! templates all are objects with a `containers` list under `spec`.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, ExecAction, Probe};
use serde::Deserialize;
use serde_json::Value;

/// How deep under `spec` pod templates are looked for.
const MAX_DEPTH: usize = 16;

/// One container of one pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Where it sits: `spec.template.spec.containers[0]`.
    pub at: String,
    /// Its name.
    pub name: String,
    /// Its image reference as written, if any.
    pub image: Option<String>,
    /// How it is launched: (field, text, whether the text is a command line).
    pub launch: Vec<LaunchText>,
}

/// One piece of launch text of a container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaunchText {
    /// `command`, `env`, `lifecycle.postStart`, `livenessProbe`, …
    pub field: &'static str,
    /// The text the rules read.
    pub text: String,
    /// Whether it is a command line.
    pub command: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodContainers {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    ephemeral_containers: Vec<Container>,
}

/// Every container of every pod template in `object` (a whole Kubernetes
/// object). A template that is not a valid pod spec is an error: what cannot
/// be read cannot be judged.
pub fn containers(object: &Value) -> Result<Vec<ContainerSpec>, String> {
    let mut out = Vec::new();
    if let Some(spec) = object.get("spec") {
        collect(spec, "spec", 0, &mut out)?;
    }
    Ok(out)
}

fn collect(
    value: &Value,
    at: &str,
    depth: usize,
    out: &mut Vec<ContainerSpec>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    match value {
        Value::Object(map) if map.get("containers").is_some_and(Value::is_array) => {
            let pod = PodContainers::deserialize(value)
                .map_err(|e| format!("the pod template at {at} cannot be read: {e}"))?;
            for (list, containers) in [
                ("containers", pod.containers),
                ("initContainers", pod.init_containers),
                ("ephemeralContainers", pod.ephemeral_containers),
            ] {
                for (i, c) in containers.into_iter().enumerate() {
                    out.push(ContainerSpec {
                        at: format!("{at}.{list}[{i}]"),
                        launch: launch_texts(&c),
                        name: c.name,
                        image: c.image.filter(|i| !i.trim().is_empty()),
                    });
                }
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, child) in map {
                collect(child, &format!("{at}.{key}"), depth + 1, out)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect(child, &format!("{at}[{i}]"), depth + 1, out)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn launch_texts(c: &Container) -> Vec<LaunchText> {
    let mut out = Vec::new();
    let command: Vec<&str> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(String::as_str)
        .collect();
    if !command.is_empty() {
        out.push(LaunchText {
            field: "command",
            text: command.join(" "),
            command: true,
        });
    }
    // Literal values only: valueFrom names a Secret or ConfigMap the webhook
    // cannot read.
    let env: Vec<String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
        .collect();
    if !env.is_empty() {
        out.push(LaunchText {
            field: "env",
            text: env.join("\n"),
            command: false,
        });
    }
    let exec = |field: &'static str, action: Option<&ExecAction>, out: &mut Vec<LaunchText>| {
        if let Some(command) = action.and_then(|a| a.command.as_ref())
            && !command.is_empty()
        {
            out.push(LaunchText {
                field,
                text: command.join(" "),
                command: true,
            });
        }
    };
    if let Some(lifecycle) = &c.lifecycle {
        fn hook(h: &Option<k8s_openapi::api::core::v1::LifecycleHandler>) -> Option<&ExecAction> {
            h.as_ref().and_then(|h| h.exec.as_ref())
        }
        exec("lifecycle.postStart", hook(&lifecycle.post_start), &mut out);
        exec("lifecycle.preStop", hook(&lifecycle.pre_stop), &mut out);
    }
    fn probe(p: &Option<Probe>) -> Option<&ExecAction> {
        p.as_ref().and_then(|p| p.exec.as_ref())
    }
    exec("livenessProbe", probe(&c.liveness_probe), &mut out);
    exec("readinessProbe", probe(&c.readiness_probe), &mut out);
    exec("startupProbe", probe(&c.startup_probe), &mut out);
    out
}

/// What an update asks for that the old object did not: containers whose
/// image is new to the object, and launch texts new to their container. A
/// scale-down or a label change yields nothing.
pub fn added(new: Vec<ContainerSpec>, old: &[ContainerSpec]) -> Vec<ContainerSpec> {
    let old_images: HashSet<&str> = old.iter().filter_map(|c| c.image.as_deref()).collect();
    let old_launch: HashSet<(&str, &LaunchText)> = old
        .iter()
        .flat_map(|c| c.launch.iter().map(move |l| (c.name.as_str(), l)))
        .collect();
    new.into_iter()
        .filter_map(|mut c| {
            let launch: Vec<LaunchText> = c
                .launch
                .iter()
                .filter(|l| !old_launch.contains(&(c.name.as_str(), *l)))
                .cloned()
                .collect();
            let new_image = c.image.as_deref().is_some_and(|i| !old_images.contains(i));
            if !new_image {
                c.image = None;
            }
            c.launch = launch;
            (c.image.is_some() || !c.launch.is_empty()).then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: u32, args: &[&str]) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "template": {"spec": {
                "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
                "containers": [{"name": "web", "image": image, "args": args,
                    "env": [{"name": "POOL", "value": "pool.example:3333"},
                            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]}},
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}}}}]
            }}}
        })
    }

    #[test]
    fn pod_templates_are_found_by_shape() {
        let found = containers(&deployment("nginx:1", 2, &["-g", "daemon off;"])).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|c| (c.at.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("spec.template.spec.containers[0]", "web"),
                ("spec.template.spec.initContainers[0]", "init")
            ]
        );
        let fields: Vec<_> = found[0]
            .launch
            .iter()
            .map(|l| (l.field, l.text.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("command", "-g daemon off;"),
                ("env", "POOL=pool.example:3333"),
                ("lifecycle.preStop", "sh -c sleep 1"),
                ("livenessProbe", "cat /tmp/ok"),
            ]
        );
        let cron = json!({"kind": "CronJob", "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "alpine"}]}}}}}});
        assert_eq!(
            containers(&cron).unwrap()[0].at,
            "spec.jobTemplate.spec.template.spec.containers[0]"
        );
        let training = json!({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {
            "containers": [{"name": "pytorch", "image": "trainer:1"}]}}}}}});
        assert_eq!(
            containers(&training).unwrap()[0].image.as_deref(),
            Some("trainer:1")
        );
        assert!(
            containers(&json!({"kind": "ConfigMap", "data": {"a": "b"}}))
                .unwrap()
                .is_empty()
        );
        let broken =
            json!({"spec": {"containers": [{"name": "c", "image": ["not", "a", "string"]}]}});
        assert!(containers(&broken).unwrap_err().contains("spec"));
    }

    #[test]
    fn updates_are_judged_for_what_they_add() {
        let old = containers(&deployment("nginx:1", 2, &["a"])).unwrap();
        // Scale-down: nothing new.
        assert!(added(containers(&deployment("nginx:1", 1, &["a"])).unwrap(), &old).is_empty());
        // A new image: that container, without the launch texts it had.
        let new = added(containers(&deployment("nginx:2", 2, &["a"])).unwrap(), &old);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].image.as_deref(), Some("nginx:2"));
        assert!(new[0].launch.is_empty());
        // New args: the command only, no image to look up.
        let new = added(containers(&deployment("nginx:1", 2, &["b"])).unwrap(), &old);
        assert_eq!((new.len(), new[0].image.as_ref()), (1, None));
        assert_eq!(new[0].launch[0].text, "b");
    }
}
