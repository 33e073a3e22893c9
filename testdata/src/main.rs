//! `minehound-testdata`: writes the demo image in each format minehound reads.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use minehound_testdata::{
    DEMO_REPO_TAG, DEMO_TAG, demo_image, write_docker_archive_classic, write_docker_archive_oci,
    write_oci_archive, write_oci_layout,
};

const USAGE: &str = "usage: minehound-testdata <command> <path>

commands:
  demo DIR                        the demo image as an OCI layout directory (tag \"latest\")
  demo-oci-archive FILE           the same layout as a tar (oci-archive)
  demo-docker-archive FILE        a classic `docker save` archive (Docker < 25)
  demo-docker-archive-oci FILE    a `docker save` archive as Docker 25+ writes it
  fuzz-seeds DIR                  seed corpora for the cargo-fuzz targets, DIR/<target>/

FILE may be - for standard output.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // `... | head` closing the pipe is not a failure.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("minehound-testdata: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> io::Result<()> {
    let [command, path] = args else {
        return Err(usage_error());
    };
    let image = demo_image().build();
    match command.as_str() {
        "fuzz-seeds" => minehound_testdata::write_fuzz_seeds(Path::new(path)),
        "demo" => write_oci_layout(Path::new(path), &[(&image, Some(DEMO_TAG))]),
        "demo-oci-archive" => write_to(path, |w| write_oci_archive(w, &[(&image, Some(DEMO_TAG))])),
        "demo-docker-archive" => write_to(path, |w| {
            write_docker_archive_classic(w, &image, &[DEMO_REPO_TAG])
        }),
        "demo-docker-archive-oci" => write_to(path, |w| {
            write_docker_archive_oci(w, &image, &[DEMO_REPO_TAG])
        }),
        _ => Err(usage_error()),
    }
}

fn write_to(path: &str, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    if path == "-" {
        let mut out = io::stdout().lock();
        write(&mut out)?;
        return out.flush();
    }
    let mut out = BufWriter::new(
        File::create(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?,
    );
    write(&mut out)?;
    out.flush()
}

fn usage_error() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, USAGE)
}
