//! Whole-registry scans straight from a CNCF Distribution storage tree that a
//! real registry process wrote, and the embedding API around them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use minehound::{
    CancelToken, DistributionStorage, Error, LayerCache, PlatformChoice, Progress, ScanRequest,
    ScannerBuilder, Severity, SourceRequest, StorageReport,
};
use minehound_testdata::registry::{
    Auth, RegistryProcess, push_image, push_manifest, push_multi_platform,
};
use minehound_testdata::{BuiltImage, Entry, ImageSpec, Layer, demo_image};

use crate::support::*;

/// What was pushed, to compare the storage scan with.
struct Pushed {
    tagged: Vec<(String, BuiltImage)>,
    layer_references: u64,
    unique_layers: HashSet<String>,
}

impl Pushed {
    fn add(&mut self, reference: String, image: BuiltImage) {
        self.layer_references += image.layers.len() as u64;
        self.unique_layers
            .extend(image.layers.iter().map(|l| l.digest.clone()));
        self.tagged.push((reference, image));
    }
}

fn base(name: &str, files: usize) -> Layer {
    Layer::gzip(
        &format!("ADD {name} /"),
        (0..files)
            .map(|i| {
                Entry::file(
                    &format!("/usr/lib/{name}/lib{i}.txt"),
                    format!("{name} {i}\n").repeat(200),
                )
            })
            .collect(),
    )
}

/// 36 images in six repositories over three shared base stacks, a
/// multi-platform image with a dirty arm64 side, the demo image, an image
/// pushed by digest only and a tag pushed twice.
fn populated_registry(dir: &std::path::Path) -> (RegistryProcess, Pushed) {
    let registry =
        RegistryProcess::start(&dir.join("work"), &dir.join("storage"), None, &Auth::None)
            .expect("start docker-registry");
    let bases = [
        vec![base("os-a", 40), base("runtime-a", 20)],
        vec![base("os-b", 40), base("runtime-b", 20)],
        vec![base("os-c", 60)],
    ];
    let mut pushed = Pushed {
        tagged: Vec::new(),
        layer_references: 0,
        unique_layers: HashSet::new(),
    };
    for repo in 0..6 {
        for tag in 1..=6 {
            let mut layers = bases[(repo + tag) % 3].clone();
            layers.push(Layer::gzip(
                "COPY app /app",
                vec![Entry::file(
                    "/app/main.py",
                    format!("print('app {repo} {tag}')\n"),
                )],
            ));
            let image = ImageSpec {
                layers,
                ..ImageSpec::default()
            }
            .build();
            push_image(
                &registry.host,
                &format!("team/app{repo}"),
                &format!("v{tag}"),
                &image,
            )
            .unwrap();
            pushed.add(format!("team/app{repo}:v{tag}"), image);
        }
    }
    let (clean, dirty) = clean_amd64_dirty_arm64();
    push_multi_platform(&registry.host, "team/multi", "1", &[&clean, &dirty]).unwrap();
    pushed.layer_references += 2;
    pushed.unique_layers.extend([
        clean.layers[0].digest.clone(),
        dirty.layers[0].digest.clone(),
    ]);
    let demo = demo_image().build();
    push_image(&registry.host, "team/demo", "latest", &demo).unwrap();
    pushed.add("team/demo:latest".into(), demo);
    // Untagged: pushed by digest only, and a tag's first image after the tag moved.
    let loose = one_layer(demo_image().layers[1].entries.clone());
    for blob in loose.blobs() {
        minehound_testdata::registry::push_blob(&registry.host, "team/app0", blob).unwrap();
    }
    push_manifest(
        &registry.host,
        "team/app0",
        &loose.manifest.digest,
        &loose.manifest,
    )
    .unwrap();
    let moved = one_layer(vec![Entry::file("/app/old.py", "print('old')\n")]);
    push_image(&registry.host, "team/app1", "v1", &moved).unwrap();
    push_image(&registry.host, "team/app1", "v1", &pushed.tagged[6].1).unwrap();
    (registry, pushed)
}

fn image_report<'a>(report: &'a StorageReport, reference: &str) -> &'a minehound::Report {
    report
        .images
        .iter()
        .find(|i| i.reference() == reference)
        .unwrap_or_else(|| panic!("{reference} not in the storage report"))
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("{reference} was not scanned"))
}

#[test]
fn a_storage_tree_scans_every_image_and_each_unique_layer_once() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, pushed) = populated_registry(dir.path());
    let storage = DistributionStorage::open(&dir.path().join("storage")).unwrap();
    let scanner = ScannerBuilder::new().jobs(2).build().unwrap();

    let started = std::time::Instant::now();
    let events = Arc::new(Events::default());
    let report = scanner
        .scan_storage(
            &storage,
            &SourceRequest::new("storage").progress(events.clone()),
        )
        .unwrap();
    let took = started.elapsed();
    let s = &report.summary;
    eprintln!(
        "storage scan: {} images, {} platform manifests, {} layer references, {} unique layers, {} layer scans, {} bytes, {took:?}",
        s.images, s.platform_images, s.layer_references, s.unique_layers, s.layers_scanned, s.bytes
    );
    // Every tag, and nothing untagged.
    assert_eq!(s.repositories, 8);
    assert_eq!(s.images, pushed.tagged.len() as u64 + 1);
    assert_eq!(
        s.images_failed,
        0,
        "{:#?}",
        report
            .images
            .iter()
            .filter(|i| i.error.is_some())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        s.platform_images,
        s.images + 1,
        "both platforms of team/multi:1"
    );
    assert!(report.images.iter().all(|i| i.tag.is_some()));
    // Each unique layer read once, however many images use it.
    assert_eq!(s.layer_references, pushed.layer_references);
    assert_eq!(s.unique_layers, pushed.unique_layers.len() as u64);
    assert_eq!(s.layers_scanned, s.unique_layers);
    assert!(s.layer_references > 2 * s.unique_layers);
    // Per-image reports are the ones a pull from the registry gives.
    let pulled = scan_with(
        &scanner,
        &format!("{}/team/demo:latest", registry.host),
        PlatformChoice::All,
    )
    .unwrap();
    let stored = image_report(&report, "team/demo:latest");
    assert_eq!(
        summary(stored, Severity::Info),
        summary(&pulled, Severity::Info)
    );
    assert!(stored.fails(Severity::High));
    assert_eq!(stored.target, "team/demo:latest");
    // The same image through the embedding calls: by manifest digest from
    // the source, and layer by layer as uploads.
    let demo = &pushed
        .tagged
        .iter()
        .find(|(r, _)| r == "team/demo:latest")
        .unwrap()
        .1;
    let by_digest = scanner
        .scan_source(
            &storage,
            &demo.manifest.digest,
            &SourceRequest::new("team/demo:latest"),
        )
        .unwrap();
    assert_eq!(
        summary(&by_digest, Severity::Info),
        summary(&pulled, Severity::Info)
    );
    let mut layer_findings = 0;
    for blob in &demo.layers {
        let scan = scanner
            .scan_layer(&blob.bytes[..], &blob.media_type)
            .unwrap();
        assert_eq!(scan.digest, blob.digest);
        layer_findings += scan.findings.len();
    }
    assert!(layer_findings > 0);
    let multi = image_report(&report, "team/multi:1");
    assert_eq!(multi.images.len(), 2);
    assert!(
        multi
            .findings
            .iter()
            .all(|f| f.platform.as_deref() == Some("linux/arm64/v8"))
    );
    assert!(!multi.findings.is_empty());
    for (reference, _) in pushed
        .tagged
        .iter()
        .filter(|(r, _)| r.starts_with("team/app"))
    {
        let r = image_report(&report, reference);
        assert!(!r.fails(Severity::Low), "{reference}: {:#?}", r.findings);
        assert_accounting(r);
    }
    assert_eq!(s.findings.critical + s.findings.high, {
        let mut n = 0;
        for i in &report.images {
            let r = i.report.as_ref().unwrap();
            n += r.stats.findings.critical + r.stats.findings.high;
        }
        n
    });
    assert_eq!(s.images_with_findings, 2);
    // Events: every layer started and finished once; each finding heard.
    assert_eq!(events.started.load(Ordering::SeqCst), s.unique_layers);
    assert_eq!(events.finished.load(Ordering::SeqCst), s.unique_layers);
    assert!(events.findings.load(Ordering::SeqCst) > 0);
    assert_eq!(events.cached.load(Ordering::SeqCst), 0);

    // Untagged manifests only on request: the digest-only push and the
    // image the tag moved away from.
    let all = scanner
        .scan_storage(&storage, &SourceRequest::new("storage").untagged(true))
        .unwrap();
    let untagged: Vec<_> = all.images.iter().filter(|i| i.tag.is_none()).collect();
    assert_eq!(
        untagged.len(),
        2,
        "{:#?}",
        untagged.iter().map(|i| i.reference()).collect::<Vec<_>>()
    );
    let loose = untagged
        .iter()
        .find(|i| i.repository == "team/app0")
        .unwrap();
    assert!(loose.report.as_ref().unwrap().fails(Severity::High));
    assert!(untagged.iter().any(|i| i.repository == "team/app1"));
    // Platform manifests of a tagged index are not untagged images.
    assert!(
        !all.images
            .iter()
            .any(|i| i.repository == "team/multi" && i.tag.is_none())
    );
}

/// Counts every kind of event.
#[derive(Default)]
struct Events {
    started: AtomicU64,
    finished: AtomicU64,
    findings: AtomicU64,
    cached: AtomicU64,
}

impl Progress for Events {
    fn layer_started(&self, _: &str, _: Option<u64>) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn finding(&self, _: &str, _: &minehound::FileFinding) {
        self.findings.fetch_add(1, Ordering::SeqCst);
    }
    fn layer_finished(&self, _: &str) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
    fn layer_cached(&self, _: &str) {
        self.cached.fetch_add(1, Ordering::SeqCst);
    }
}

/// Cancels the scan once `after` layers are done.
struct CancelAfter {
    after: u64,
    done: AtomicU64,
    cancel: CancelToken,
}

impl Progress for CancelAfter {
    fn layer_finished(&self, _layer: &str) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.cancel.cancel();
        }
    }
}

#[test]
fn an_interrupted_storage_scan_resumes_through_the_layer_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (_registry, _) = populated_registry(dir.path());
    let storage = DistributionStorage::open(&dir.path().join("storage")).unwrap();
    let cache_dir = dir.path().join("cache");
    let scanner = || {
        ScannerBuilder::new()
            .jobs(2)
            .cache(LayerCache::open(&cache_dir).unwrap())
            .build()
            .unwrap()
    };

    let cancel = CancelToken::new();
    let watcher = Arc::new(CancelAfter {
        after: 10,
        done: AtomicU64::new(0),
        cancel: cancel.clone(),
    });
    let request = SourceRequest::new("storage")
        .progress(watcher.clone())
        .cancel(cancel);
    let err = scanner().scan_storage(&storage, &request).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    let done_before = watcher.done.load(Ordering::SeqCst);
    assert!(done_before >= 10);

    let resumed = scanner()
        .scan_storage(&storage, &SourceRequest::new("storage"))
        .unwrap();
    let s = &resumed.summary;
    assert_eq!(s.images_failed, 0);
    assert!(s.layers_cached >= 9, "{s:#?}");
    assert_eq!(s.layers_cached + s.layers_scanned, s.unique_layers);
    assert!(s.layers_scanned < s.unique_layers);

    let events = Arc::new(Events::default());
    let again = scanner()
        .scan_storage(
            &storage,
            &SourceRequest::new("storage").progress(events.clone()),
        )
        .unwrap();
    assert_eq!(
        events.cached.load(Ordering::SeqCst),
        again.summary.unique_layers
    );
    assert_eq!(events.started.load(Ordering::SeqCst), 0);
    assert_eq!(again.summary.layers_scanned, 0);
    assert_eq!(again.summary.layers_cached, again.summary.unique_layers);
    // The verdicts do not depend on where layer results came from.
    for (a, b) in resumed.images.iter().zip(&again.images) {
        let (a, b) = (a.report.as_ref().unwrap(), b.report.as_ref().unwrap());
        assert_eq!(summary(a, Severity::Info), summary(b, Severity::Info));
    }
}

#[test]
fn async_scans_do_not_block_the_runtime_and_dropping_one_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let demo = layout(&dir.path().join("demo"), &demo_image().build());
    let scanner = ScannerBuilder::new().jobs(2).build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // One runtime thread: ticks keep coming while two scans run.
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let one = scanner.scan_async(ScanRequest::new(demo.parse().unwrap(), &demo));
        let two = scanner.scan_async(ScanRequest::new(demo.parse().unwrap(), &demo));
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        assert!(one.fails(Severity::High) && two.fails(Severity::High));
        assert!(
            ticks.load(Ordering::Relaxed) > 0,
            "the runtime kept running"
        );
        ticker.abort();

        // A finished task leaves a shared token alone; a dropped one cancels it.
        let shared = CancelToken::new();
        let mut done = Box::pin(
            scanner
                .scan_async(ScanRequest::new(demo.parse().unwrap(), &demo).cancel(shared.clone())),
        );
        assert!(done.as_mut().await.is_ok());
        drop(done);
        assert!(!shared.is_cancelled());
        let cancel = CancelToken::new();
        let task = scanner
            .scan_async(ScanRequest::new(demo.parse().unwrap(), &demo).cancel(cancel.clone()));
        drop(task);
        assert!(cancel.is_cancelled());
    });
}
