//! One multi-layer image scanned from a local registry beside the same image
//! scanned from an OCI layout, in the same run; and both again with the
//! layer read ahead inflated by two threads from several offsets: the
//! layout's file, and the registry's layer fetched by range requests into a
//! spool file as it arrives.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use minehound::{RegistryOptions, ScanRequest, ScannerBuilder};
use minehound_bench::{bench_mib, usr_lib_tar};
use minehound_testdata::registry::{Auth, RegistryProcess, push_image};
use minehound_testdata::{Compression, Entry, ImageSpec, Layer, write_oci_layout};

fn registry_vs_layout(c: &mut Criterion) {
    let mib = bench_mib(150);
    // Three layers cut from real /usr/lib files.
    let tar = usr_lib_tar(mib << 20);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        files.push(Entry::file(&path, data));
    }
    let third = files.len().div_ceil(3);
    let layers = files
        .chunks(third)
        .enumerate()
        .map(|(i, chunk)| Layer {
            entries: chunk.to_vec(),
            compression: Compression::Gzip,
            created_by: format!("COPY part{i} /"),
        })
        .collect();
    let image = ImageSpec {
        layers,
        ..ImageSpec::default()
    }
    .build();

    let dir = std::env::temp_dir().join(format!("minehound-bench-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_oci_layout(&dir.join("layout"), &[(&image, Some("bench"))]).unwrap();
    let registry =
        RegistryProcess::start(&dir.join("work"), &dir.join("storage"), None, &Auth::None)
            .expect("docker-registry");
    push_image(&registry.host, "bench/image", "1", &image).unwrap();

    let scanner = ScannerBuilder::new().build().unwrap();
    let layout_target = format!("oci:{}", dir.join("layout").display());
    let registry_target = format!("{}/bench/image:1", registry.host);
    let options = RegistryOptions {
        use_config_files: false,
        ..RegistryOptions::default()
    };

    let inflating = ScannerBuilder::new().gzip_inflaters(2).build().unwrap();
    let spooling = RegistryOptions {
        spool_from: 1 << 20,
        ..options.clone()
    };

    let mut group = c.benchmark_group("image");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(
        image.layers.iter().map(|l| l.bytes.len() as u64).sum(),
    ));
    group.bench_function("scan from OCI layout", |b| {
        let request = ScanRequest::new(layout_target.parse().unwrap(), &layout_target);
        b.iter(|| scanner.scan(&request).unwrap().stats.files)
    });
    group.bench_function("scan from local registry", |b| {
        let request = ScanRequest::new(registry_target.parse().unwrap(), &registry_target)
            .registry(options.clone());
        b.iter(|| scanner.scan(&request).unwrap().stats.files)
    });
    group.bench_function("scan from OCI layout, 2 inflaters", |b| {
        let request = ScanRequest::new(layout_target.parse().unwrap(), &layout_target);
        b.iter(|| inflating.scan(&request).unwrap().stats.files)
    });
    group.bench_function("scan from local registry, spooled, 2 inflaters", |b| {
        let request = ScanRequest::new(registry_target.parse().unwrap(), &registry_target)
            .registry(spooling.clone());
        b.iter(|| inflating.scan(&request).unwrap().stats.files)
    });
    group.finish();
    drop(registry);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, registry_vs_layout);
criterion_main!(benches);
