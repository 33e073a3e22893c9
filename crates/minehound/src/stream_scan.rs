//! Archives that can only be read once, front to back (stdin, a compressed
//! docker-archive): layers scanned as the stream passes, on the workers.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minehound_oci::{BlobLocation, BlobStore, PlatformChoice};

use crate::layer::{BlobAt, LayerScan, contain_layer_panic, scan_layer_blob};
use crate::layer_share::Release;
use crate::merge::ScannedImage;
use crate::scanner::{assemble, take_shared};
use crate::{Error, LayerError, Scanner};

impl Scanner {
    /// Scans an archive that can only be read once, front to back.
    pub(crate) fn scan_stream(
        &self,
        reader: Box<dyn Read + Send>,
        name: &str,
        wanted: Option<&minehound_oci::ImageRef>,
        platform: &PlatformChoice,
    ) -> Result<Vec<ScannedImage>, Error> {
        let limits = &self.limits;
        let (_, tar) = minehound_unpack::decompress(reader, u64::MAX).map_err(|source| {
            Error::Source(minehound_oci::Error::Io {
                path: name.into(),
                source,
            })
        })?;
        let mut streamed_scans: HashMap<String, Result<LayerScan, LayerError>> = HashMap::new();
        let streamed = if self.pool.current_num_threads() > 1 {
            self.read_stream_spooled(tar, name, &mut streamed_scans)?
        } else {
            let mut detector = self.detector();
            minehound_oci::read_archive_stream(tar, name, &mut |path, blob| {
                let result = contain_layer_panic(&mut detector, |detector| {
                    scan_layer_blob(blob, detector, limits)
                });
                streamed_scans.insert(path.to_string(), result);
            })?
        };
        let mut detector = self.detector();
        let images = minehound_oci::images_from_archive(&streamed.store, wanted, platform)?;
        // Keyed by archive member: two locations may name one member (links).
        let mut done: HashMap<BlobLocation, Result<Arc<LayerScan>, LayerError>> = HashMap::new();
        assemble(images, |layer| {
            let member = streamed.resolve(&layer.location.member_path()?).to_string();
            let key = BlobLocation::ArchivePath(member.clone());
            if !done.contains_key(&key) {
                let result = match streamed_scans.remove(&member) {
                    Some(scan) => scan,
                    None => streamed
                        .store
                        .open(&key)
                        .map_err(LayerError::from)
                        .and_then(|blob| self.scan_blob(blob, None, &mut detector, true, None)),
                };
                done.insert(key.clone(), result.map(Arc::new));
            }
            take_shared(&mut done, &key)
        })
    }

    /// Reads an archive stream on this thread and copies each layer blob into
    /// an unnamed temporary file that a worker scans while the stream goes on,
    /// so the layers of a piped archive are scanned in parallel. The queue is
    /// bounded: at most about twice the workers' count of compressed layers
    /// sit on disk at once, and each is gone once scanned. A layer taken while
    /// no other waits and a worker is idle (an image of one large layer, say)
    /// is read as one from a layout is: inflated ahead, from several offsets
    /// where it is gzip, its files checked by the idle workers too.
    fn read_stream_spooled(
        &self,
        tar: impl Read,
        name: &str,
        scans: &mut HashMap<String, Result<LayerScan, LayerError>>,
    ) -> Result<minehound_oci::StreamedArchive, Error> {
        let jobs = self.pool.current_num_threads();
        let (queue, queued) = std::sync::mpsc::sync_channel::<(String, std::fs::File)>(jobs);
        // Each worker holds the receiver: once none is left (a worker can end
        // early, its detector refused), sending fails rather than blocks.
        let queued = Arc::new(std::sync::Mutex::new(queued));
        // Spooled layers no worker has taken yet.
        let waiting = AtomicUsize::new(0);
        let detector = || self.detector();
        let layers_waiting = || waiting.load(Ordering::SeqCst) > 0;
        let helpers = self.helpers(&detector, &layers_waiting);
        let (waiting, helpers) = (&waiting, &helpers);
        let streamed =
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..jobs)
                    .map(|_| {
                        let queued = Arc::clone(&queued);
                        scope.spawn(move || {
                            let mut detector = self.detector();
                            let mut done = Vec::new();
                            loop {
                                let next = match queued.lock() {
                                    Ok(queued) => queued.recv(),
                                    Err(_) => break,
                                };
                                let Ok((path, file)) = next else { break };
                                waiting.fetch_sub(1, Ordering::SeqCst);
                                let now_busy = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
                                let _busy = Release(&self.busy);
                                let ahead = now_busy < jobs && waiting.load(Ordering::SeqCst) == 0;
                                let at = (ahead && self.gzip_inflaters > 0)
                                    .then(|| file.try_clone().ok().map(BlobAt::Spooled))
                                    .flatten();
                                let blob = std::io::BufReader::new(file);
                                let helpers = self.share_files.then_some(helpers);
                                done.push((
                                    path,
                                    self.scan_blob(blob, at, &mut detector, ahead, helpers),
                                ));
                            }
                            done
                        })
                    })
                    .collect();
                drop(queued);
                let streamed =
                    minehound_oci::read_archive_stream(tar, name, &mut |path, blob| match spool(
                        blob,
                    ) {
                        Ok(file) => {
                            waiting.fetch_add(1, Ordering::SeqCst);
                            if queue.send((path.to_string(), file)).is_err() {
                                waiting.fetch_sub(1, Ordering::SeqCst);
                            }
                        }
                        Err(source) => {
                            scans.insert(path.to_string(), Err(LayerError::Spool(source)));
                        }
                    });
                drop(queue);
                // Workers contain their layers' panics; a layer of a worker that
                // ended anyway has no result, and its image ends in an error.
                for worker in workers.into_iter().filter_map(|w| w.join().ok()) {
                    scans.extend(worker);
                }
                streamed
            })?;
        Ok(streamed)
    }
}

/// Copies a blob into an unnamed temporary file (removed when closed) and
/// rewinds it.
fn spool(blob: &mut dyn Read) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    let mut file = tempfile::tempfile()?;
    std::io::copy(blob, &mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}
