//! What sets a reload off: the one reload loop every trigger goes through (watch events
//! debounced), and the rules directory's watcher with its tracking of files still being
//! written ([`Activity`]), so that no half-written file is loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};

use super::{ReloadOutcome, RuleStore, Trigger};
use crate::rules;

/// Editors and Kubernetes write in bursts; wait for this much quiet before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// ...but never longer than this after the first event (files still open for writing aside).
const DEBOUNCE_MAX: Duration = Duration::from_secs(2);
/// A file written to and not closed for this long is taken as done (a writer that died, or a
/// close event lost to an overflowing event queue), so that it cannot hold reloads up for ever.
const WRITE_STALE: Duration = Duration::from_secs(10);

/// What the watcher has seen of the rules directory. A file written in several pieces (`scp`,
/// `cp`, a script with pauses, an editor writing in place) parses fine when cut at many
/// places, with fewer rules: loading it half-written could let payments through that the whole
/// file refuses. So a file is "being written" from its first write until it is closed (or
/// renamed or removed), and no load starts while one is; and a load during which anything
/// changed is thrown away and done again.
#[derive(Default)]
pub struct Activity {
    /// Every relevant event counts; a load compares the count before and after.
    events: AtomicU64,
    /// Files written to and not yet closed, with their last write.
    writing: Mutex<HashMap<PathBuf, Instant>>,
}

impl Activity {
    pub(super) fn event(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }

    pub(super) fn seen(&self, event: &notify::Event) {
        self.events.fetch_add(1, Ordering::SeqCst);
        let Ok(mut writing) = self.writing.lock() else {
            return;
        };
        let now = Instant::now();
        for path in &event.paths {
            match event.kind {
                // A symlink (Kubernetes links each file into its `..data` directory) is
                // complete when created and never closed.
                EventKind::Create(CreateKind::File) if path.is_symlink() => {}
                // Only a regular file is written and closed: a FIFO or a socket never is. A
                // file that has content when created is a hard link (`ln`, `git`), complete.
                EventKind::Create(CreateKind::File)
                    if !std::fs::symlink_metadata(path)
                        .is_ok_and(|m| m.is_file() && m.len() == 0) => {}
                EventKind::Modify(ModifyKind::Data(_))
                    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) => {}
                EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => {
                    writing.insert(path.clone(), now);
                }
                EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_)) => {
                    writing.remove(path);
                }
                _ => {}
            }
        }
    }

    /// A file still being written, if any (stale ones are forgotten, with a warning).
    pub(super) fn writing(&self) -> Option<PathBuf> {
        let mut writing = self.writing.lock().ok()?;
        writing.retain(|path, last| {
            let stale = last.elapsed() >= WRITE_STALE;
            if stale {
                tracing::warn!(
                    path = %path.display(),
                    "rules file written to and not closed for {WRITE_STALE:?}: no longer waited for on the watch's word (a process still holding it open for writing is)"
                );
            }
            !stale
        });
        writing.keys().next().cloned()
    }
}

/// A request to reload, with an optional reply (the admin endpoint waits for the outcome).
pub struct ReloadRequest {
    pub trigger: Trigger,
    pub reply: Option<oneshot::Sender<ReloadOutcome>>,
}

/// The sending side of the reload loop.
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::Sender<ReloadRequest>,
    store: Arc<RuleStore>,
}

impl Reloader {
    /// Whether a change to `path` may change the rules: see [`concerns_rules`], and any script
    /// the rule files reference, whatever its extension.
    fn concerns(&self, path: &Path) -> bool {
        concerns_rules(path) || self.store.references(path)
    }

    /// What the watcher saw: counted, tracked, and a reload asked for when it may matter.
    fn watched(&self, event: notify::Event) {
        // The event queue overflowed: changes were missed, so reload to be sure.
        if event.need_rescan() {
            self.store.activity.events.fetch_add(1, Ordering::SeqCst);
            self.request(Trigger::Watch);
            return;
        }
        if !event.paths.iter().any(|p| self.concerns(p)) {
            return;
        }
        // Opening and reading files (the reload's own reads too) changes nothing; closing one
        // that was written completes a save.
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return,
            _ => {}
        }
        self.store.activity.seen(&event);
        self.request(Trigger::Watch);
    }

    /// Asks for a reload and waits for its outcome.
    pub async fn reload(&self, trigger: Trigger) -> Option<ReloadOutcome> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ReloadRequest {
                trigger,
                reply: Some(reply),
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Asks for a reload without waiting for it. A change the watcher saw may be dropped when
    /// the queue is full: the reloads queued before it read the files after it. A signal is
    /// queued whatever the wait (in a task of its own, so that the signals after it are still
    /// heard), as its reload is the one that reports.
    pub fn request(&self, trigger: Trigger) {
        let request = ReloadRequest {
            trigger,
            reply: None,
        };
        match self.tx.try_send(request) {
            Err(mpsc::error::TrySendError::Full(request)) if trigger != Trigger::Watch => {
                let tx = self.tx.clone();
                tokio::spawn(async move { tx.send(request).await });
            }
            _ => {}
        }
    }
}

/// Spawns the one reload loop; every trigger goes through it, so reloads never overlap.
pub fn spawn_reload_loop(store: Arc<RuleStore>) -> (Reloader, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<ReloadRequest>(64);
    let reloader = Reloader {
        tx,
        store: store.clone(),
    };
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut waiting = vec![first];
            if waiting[0].trigger == Trigger::Watch {
                debounce(&mut rx, &mut waiting).await;
            }
            // Requests that came while the last reload ran (a burst of SIGHUPs, several
            // operators' POSTs) are all answered by one reload, which reads the files after
            // every one of them was made.
            while let Ok(next) = rx.try_recv() {
                waiting.push(next);
            }
            let trigger = waiting
                .iter()
                .map(|r| r.trigger)
                .find(|t| *t != Trigger::Watch)
                .unwrap_or(Trigger::Watch);
            let outcome = store.reload(trigger).await;
            for r in waiting {
                if let Some(reply) = r.reply {
                    let _ = reply.send(outcome.clone());
                }
            }
        }
    });
    (reloader, task)
}

/// Collects further triggers until the directory has been quiet for [`DEBOUNCE`].
async fn debounce(rx: &mut mpsc::Receiver<ReloadRequest>, waiting: &mut Vec<ReloadRequest>) {
    let limit = tokio::time::Instant::now() + DEBOUNCE_MAX;
    loop {
        let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(limit);
        match tokio::time::timeout_at(quiet, rx.recv()).await {
            Ok(Some(next)) => {
                let urgent = next.trigger != Trigger::Watch;
                waiting.push(next);
                // Someone is waiting for an answer: stop collecting and reload now.
                if urgent {
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Files the rules version covers by name (`.yaml`, `.rhai`), and directories or Kubernetes'
/// `..data` links that may hold rule files (a name without an extension that is no regular
/// file, or is gone); not a decision log, a file `git` keeps in `.git/objects` or an editor's
/// swap file written next to them, which would hold reloads while they are written. Scripts
/// with other names, and the directories they are in, are known to the store
/// ([`Reloader::concerns`]).
fn concerns_rules(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    rules::is_rule_source(path)
        || name.starts_with("..")
        || (path.extension().is_none() && !path.is_file())
}

/// A rules file under `dir` that another process holds open for writing, if any, as
/// `/proc` shows it (nothing where it cannot be read: another user's processes, no `/proc`).
///
/// [`Activity`] knows the writes its watch saw; a directory swapped in (`rm -rf rules && mkdir
/// rules`, a release moved into place) was written before anything watched it, and a writer
/// pausing there between two pieces of a file sent no event yet: its half would load.
/// `concerns` keeps to the files rules are read from (an editor's swap file stays open for
/// writing as long as the editor does).
pub(super) fn open_for_writing(
    dir: &Path,
    linked: &[PathBuf],
    concerns: &dyn Fn(&Path) -> bool,
) -> Option<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::canonicalize(dir).ok()?;
    let me = std::process::id().to_string();
    // A hard link is open under its other name: known by device and inode.
    let linked_ids: Vec<(u64, u64)> = (linked.iter())
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino())))
        .collect();
    let one_of_linked = |file: &Path| {
        rules::is_rule_source(file)
            && std::fs::metadata(file).is_ok_and(|m| linked_ids.contains(&(m.dev(), m.ino())))
    };
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = process.file_name();
        if pid
            .to_str()
            .is_none_or(|p| p == me || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(file) = std::fs::read_link(fd.path()) else {
                continue;
            };
            // A file deleted while open reads `… (deleted)`: no longer the rules' (and its
            // close would reach no watch).
            let ours = (file.starts_with(&dir) && concerns(&file))
                || linked.contains(&file)
                || one_of_linked(&file);
            if !ours || file.to_str().is_some_and(|f| f.ends_with(" (deleted)")) {
                continue;
            }
            let info = process.path().join("fdinfo").join(fd.file_name());
            if std::fs::read_to_string(info).is_ok_and(|info| opened_for_writing(&info)) {
                // Named for the operator who must close it (`process 4242 (rsync)`).
                let comm = std::fs::read_to_string(process.path().join("comm")).unwrap_or_default();
                let holder = format!("process {} ({})", pid.to_string_lossy(), comm.trim());
                return Some((file, holder));
            }
        }
    }
    None
}

/// Whether `/proc/PID/fdinfo/FD` text says the file was opened to be written (its access mode,
/// the flags' low two bits, is write-only or read-write).
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

/// A linked file's identity and last change (device, inode, size, modification and change
/// times), or `None` while it is missing.
type FileState = Option<(u64, u64, u64, i64, i64, i64, i64)>;

/// Every file rules are read from through a symlink that leads out of the rules directory — a
/// rule file that is such a link, a rule test or referenced script with one on its way — or
/// that is a hard link (a file of several names, any of which may be written to), by its path
/// in the directory, sorted: the files an inotify watch on the directory hears nothing of
/// (it hears of a file written through its name there). Kubernetes' `NAME.yaml ->
/// ..data/NAME.yaml` stays in, and is watched.
fn linked_paths(dir: &Path, scripts: &[PathBuf]) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let linked_out = |p: &Path| rules::leads_outside(dir, p);
    // Through any symlinks on the way: a link to a file of several names is one of them.
    let hard_linked = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.nlink() > 1);
    // A link anywhere on the way from the directory: the file itself, or `tests` or `scripts`
    // linked to a directory elsewhere (a trial's edits to tests there were never seen).
    let reached_by_link = |p: &Path| {
        (p.ancestors().take_while(|a| *a != dir).any(is_link) && linked_out(p)) || hard_linked(p)
    };
    let mut paths: Vec<PathBuf> = [dir.to_owned(), dir.join("tests")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| rules::is_rule_source(p))
        .filter(|p| reached_by_link(p))
        .collect();
    paths.extend(
        scripts
            .iter()
            .map(|s| dir.join(s))
            .filter(|p| reached_by_link(p)),
    );
    paths.sort();
    paths.dedup();
    paths
}

/// Where the files of [`linked_paths`] are, those that exist: where a process writing one
/// holds it open.
pub(super) fn linked_targets(dir: &Path, scripts: &[PathBuf]) -> Vec<PathBuf> {
    linked_paths(dir, scripts)
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect()
}

/// The state of each file of [`linked_paths`], by its path in the rules directory.
fn linked_files(dir: &Path, scripts: &[PathBuf]) -> Vec<(PathBuf, FileState)> {
    use std::os::unix::fs::MetadataExt;
    linked_paths(dir, scripts)
        .into_iter()
        .map(|p| {
            let state = std::fs::metadata(&p).ok().map(|m| {
                (
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                )
            });
            (p, state)
        })
        .collect()
}

/// How often the rules directory's identity is checked (see [`RulesWatcher`]).
const IDENTITY_CHECK: Duration = Duration::from_secs(1);

/// The watch on the rules directory; dropping it stops it.
///
/// inotify watches a directory, not a path: once the path names another directory — a release
/// swapped in with `mv`, a `current` symlink flipped to a new release, the directory removed
/// and created again — the watch stays on the old one, and edits in the new one would never
/// reload. So the path's identity (device and inode, through symlinks) is checked every
/// second, and a new directory there is watched and reloaded.
pub struct RulesWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RulesWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the rules directory (recursively: scripts, tests, Kubernetes' `..data` swaps and
/// editors' rename-on-save all show up as events on it), and the directory the path names (see
/// [`RulesWatcher`]). Files saved between the first load and the start of the watch are caught
/// by a reload here.
///
/// A watch that cannot be set up (the kernel's inotify limits reached: a busy node's
/// `fs.inotify.max_user_instances`) does not keep the proxy from serving: it is warned about and
/// tried again every second, and `SIGHUP` or `POST /admin/reload` reload meanwhile.
///
/// Its first walk of the tree runs on the caller's thread: it is called once, at start-up,
/// before anything is served. Every look at the disk after that is off the workers.
pub fn watch(dir: &Path, reloader: Reloader) -> RulesWatcher {
    // `None` while not known (the first look failed: out of file descriptors): the first look
    // that works is taken as it is, not as a directory swapped in.
    let mut identity = dir_identity(dir).ok();
    let store = reloader.store.clone();
    store.update_watch(|_| {});
    let mut unwatched = Lasting::new(&store, |s| &mut s.not_watched);
    let mut watching = match watch_events(dir, &reloader) {
        Ok(w) => Some(w),
        Err(e) => {
            unwatched.report(not_watched(dir, &e));
            None
        }
    };
    // The linked files as the rules the watch starts with were read, taken before the version
    // is compared: an edit before this look changes the version, one after it the look.
    let mut linked = linked_files(dir, &store.scripts());
    if rules::rules_version(dir).is_ok_and(|v| v != reloader.store.current().version) {
        reloader.request(Trigger::Watch);
    }
    let dir = dir.to_owned();
    let task = tokio::spawn(async move {
        let mut every = tokio::time::interval(IDENTITY_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        let mut unreadable = Lasting::new(&store, |s| &mut s.unreadable);
        loop {
            every.tick().await;
            // What no event of the directory's watch tells: an edit to the file a rule file,
            // rule test or script links to outside the directory (a release area, another
            // volume), or that file appearing. Looked at by its metadata, a few `stat`s a
            // second; a change reloads (which finds the rules unchanged if they are).
            let (looked_at, scripts) = (dir.clone(), store.scripts());
            if let Ok(now) =
                tokio::task::spawn_blocking(move || linked_files(&looked_at, &scripts)).await
            {
                if now != linked {
                    reloader.request(Trigger::Watch);
                    linked = now;
                }
            }
            // A reload refused for a file held open for writing, whose close no event told of
            // (it is outside the directory): reloaded once it is closed.
            if store.writer_gone().await {
                reloader.request(Trigger::Watch);
            }
            // A watch that failed while running misses edits under what it could not add (a new
            // subdirectory past the limit of watches): shown as a trouble, and added again
            // (below) until that works; what it does watch goes on reloading meanwhile.
            if let Some(w) = &mut watching {
                if let Some(why) = w.broken.take() {
                    w.incomplete = true;
                    unwatched.report(why);
                }
            }
            // Off the workers: a stat of a hung network mount would hold one.
            let looked_at = dir.clone();
            let Ok(looked) = tokio::task::spawn_blocking(move || dir_identity(&looked_at)).await
            else {
                continue;
            };
            let now = match looked {
                Ok(now) if identity.is_none() => {
                    unreadable.over();
                    identity = Some(now);
                    continue;
                }
                Ok(now) => {
                    unreadable.over();
                    now
                }
                // Out of file descriptors, or no permission: which directory the path names is
                // not known, so the watch stays as it is (it is no directory gone).
                Err(e) => {
                    unreadable.report(format!(
                        "cannot look at the rules directory {}: {e}; its watch stays as it is, and a directory swapped in is not noticed",
                        dir.display()
                    ));
                    continue;
                }
            };
            let known = identity.as_ref().and_then(Option::as_ref);
            if now.as_ref().map(|d| d.id) == known.map(|d| d.id) {
                if known.is_none() {
                    continue;
                }
                match watching.take() {
                    None => match watch_events_off(&dir, &reloader).await {
                        Ok(w) => {
                            watching = Some(w);
                            unwatched.over();
                            tracing::info!(dir = %dir.display(), "watching the rules directory now");
                            reloader.request(Trigger::Watch);
                        }
                        Err(e) => unwatched.report(not_watched(&dir, &e)),
                    },
                    // notify adds what it does not watch yet, and keeps what it does.
                    Some(mut w) if w.incomplete => {
                        let looked_at = dir.clone();
                        let added = tokio::task::spawn_blocking(move || {
                            let added = w.watcher.watch(&looked_at, RecursiveMode::Recursive);
                            (w, added)
                        })
                        .await;
                        // A panic there loses the watch: set up again a second later.
                        let Ok((mut w, added)) = added else {
                            continue;
                        };
                        match added {
                            Ok(()) => {
                                w.incomplete = false;
                                unwatched.over();
                                tracing::info!(dir = %dir.display(), "watching all of the rules directory again");
                                reloader.request(Trigger::Watch);
                            }
                            Err(e) => unwatched.report(not_watched(&dir, &e)),
                        }
                        watching = Some(w);
                    }
                    same => watching = same,
                }
                continue;
            }
            // The old directory's events concern nothing any more.
            drop(watching.take());
            let gone = now.is_none();
            identity = Some(now);
            if gone {
                // Unwatched while it is gone (/admin/rules, the watched gauge), until a
                // directory there is watched (below).
                unwatched.report(format!(
                    "the rules directory {} is gone; the running rules stay, and a directory created there is watched and loaded",
                    dir.display()
                ));
                // A reload that fails, as any failed reload does: counted, and its error shown
                // by /admin/rules (a `current` symlink pointed at a release not there).
                reloader.request(Trigger::Watch);
                continue;
            }
            // Loaded whether or not it can be watched; an unwatched one is tried again every
            // second (above).
            match watch_events_off(&dir, &reloader).await {
                Ok(w) => {
                    watching = Some(w);
                    unwatched.over();
                    tracing::info!(dir = %dir.display(), "the rules directory was replaced; watching the new one");
                }
                Err(e) => unwatched.report(not_watched(&dir, &e)),
            }
            reloader.request(Trigger::Watch);
        }
    });
    RulesWatcher { task }
}

/// How often a trouble that lasts is warned about again.
const WARN_AGAIN: Duration = Duration::from_secs(60);

/// How the watch of the rules directory is doing: while it has a trouble, edits may not be
/// picked up, which `/admin/rules` and the `confirm_proxy_rules_watched` gauge tell operators
/// (a warning once a minute in the log is easy to miss).
#[derive(Debug, Clone, Default)]
pub struct WatchStatus {
    /// Why the directory is not watched: its edits are not picked up.
    pub not_watched: Option<Trouble>,
    /// Why the path cannot be looked at: a directory swapped in there is not noticed.
    pub unreadable: Option<Trouble>,
}

impl WatchStatus {
    /// Whether every edit is picked up.
    pub fn ok(&self) -> bool {
        self.not_watched.is_none() && self.unreadable.is_none()
    }

    pub fn troubles(&self) -> impl Iterator<Item = &Trouble> {
        self.not_watched.iter().chain(&self.unreadable)
    }
}

/// A trouble of the watch, and since when it has lasted.
#[derive(Debug, Clone)]
pub struct Trouble {
    pub since: SystemTime,
    pub message: String,
}

/// One kind of lasting trouble: recorded in the store's [`WatchStatus`] while it lasts, and
/// warned about when it starts and again every [`WARN_AGAIN`].
struct Lasting {
    store: Arc<RuleStore>,
    slot: fn(&mut WatchStatus) -> &mut Option<Trouble>,
    warned: Option<Instant>,
}

impl Lasting {
    fn new(store: &Arc<RuleStore>, slot: fn(&mut WatchStatus) -> &mut Option<Trouble>) -> Self {
        Lasting {
            store: store.clone(),
            slot,
            warned: None,
        }
    }

    fn report(&mut self, message: String) {
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_AGAIN) {
            self.warned = Some(Instant::now());
            tracing::warn!("{message}");
        }
        let slot = self.slot;
        self.store.update_watch(|status| {
            let trouble = slot(status);
            let since = trouble.as_ref().map_or_else(SystemTime::now, |t| t.since);
            *trouble = Some(Trouble { since, message });
        });
    }

    fn over(&mut self) {
        if self.warned.take().is_some() {
            let slot = self.slot;
            self.store.update_watch(|status| *slot(status) = None);
        }
    }
}

/// Why `dir` is not watched, and what still reloads it.
fn not_watched(dir: &Path, e: &notify::Error) -> String {
    // inotify_init's EMFILE is the per-user limit of inotify instances, not of open files.
    let limits = match &e.kind {
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => {
            " (the limit of inotify instances, fs.inotify.max_user_instances, or of open files)"
        }
        notify::ErrorKind::MaxFilesWatch => " (fs.inotify.max_user_watches)",
        _ => "",
    };
    format!(
        "cannot watch the rules directory {}: {e}{limits}; edits are not picked up until the watch starts (tried again every second); SIGHUP or POST /admin/reload reload meanwhile",
        dir.display()
    )
}

/// Why the running watch failed, if it did; taken by the watcher's task.
#[derive(Clone, Default)]
struct Broken(Arc<Mutex<Option<String>>>);

impl Broken {
    fn set(&self, why: String) {
        if let Ok(mut broken) = self.0.lock() {
            *broken = Some(why);
        }
    }

    fn take(&self) -> Option<String> {
        self.0.lock().ok()?.take()
    }
}

/// A running watch of the rules directory.
struct Watch {
    watcher: notify::RecommendedWatcher,
    /// Why it failed while running, if it did: its own, so that a watch being replaced does
    /// not mark its successor.
    broken: Broken,
    /// It failed while running, and has not added everything again since.
    incomplete: bool,
}

/// [`watch_events`] off the workers: it walks the whole tree, and a hung network mount would
/// hold one.
async fn watch_events_off(dir: &Path, reloader: &Reloader) -> notify::Result<Watch> {
    let (dir, reloader) = (dir.to_owned(), reloader.clone());
    tokio::task::spawn_blocking(move || watch_events(&dir, &reloader))
        .await
        .unwrap_or_else(|e| Err(notify::Error::generic(&e.to_string())))
}

/// A notify watcher feeding `reloader` with the events under `dir`.
fn watch_events(dir: &Path, reloader: &Reloader) -> notify::Result<Watch> {
    let watching = reloader.clone();
    let broken = Broken::default();
    let (failed, watched) = (broken.clone(), dir.to_owned());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(e) => watching.watched(e),
            // Events may have been missed, and later ones will be (a new subdirectory not
            // watched: the limit of watches reached): what is on disk now is loaded, and what
            // the watch could not add is added again as soon as it can be.
            Err(e) => {
                failed.set(not_watched(&watched, &e));
                watching.request(Trigger::Watch);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(Watch {
        watcher,
        broken,
        incomplete: false,
    })
}

/// A directory the rules path named, held open.
struct DirIdentity {
    /// Device and inode.
    id: (u64, u64),
    /// While it is open, the directory's inode is not given to another one even once it is
    /// removed: file systems that reuse inode numbers at once (`rm -rf rules && mkdir rules`
    /// gets the same number back on ext4) would otherwise hide the new directory.
    _open: std::fs::File,
}

/// Which directory `dir` names now (symlinks followed); `None` when none (nothing there, or
/// no directory); an error when that cannot be told (out of file descriptors, no permission).
fn dir_identity(dir: &Path) -> std::io::Result<Option<DirIdentity>> {
    use std::os::unix::fs::MetadataExt;
    let open = match std::fs::File::open(dir) {
        Ok(open) => open,
        // A symlink loop (`current` pointed at itself) names no directory either.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let meta = open.metadata()?;
    Ok(meta.is_dir().then(|| DirIdentity {
        id: (meta.dev(), meta.ino()),
        _open: open,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::reload::tests::{
        held_for_writing, linked_from_outside, store, store_waiting, store_with, within, GOOD,
    };

    /// Nothing there, a file, or a path through a file: no directory (gone). Out of file
    /// descriptors or permission is an error instead, which leaves the watch alone.
    #[test]
    fn what_the_rules_path_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let looped = dir.path().join("current");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        for gone in [
            dir.path().join("missing"),
            file.clone(),
            file.join("rules"),
            looped,
        ] {
            assert!(dir_identity(&gone).unwrap().is_none(), "{}", gone.display());
        }
        assert!(dir_identity(dir.path()).unwrap().is_some());
    }

    /// A lasting trouble is in the store's status from its first report to its end, with the
    /// time it started; the log is warned once, not at every report.
    #[test]
    fn a_lasting_trouble_is_shown_until_it_is_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let store = store(dir.path());
        assert!(store.watch_status().is_none(), "nothing watches yet");
        store.update_watch(|_| {});
        assert!(store.watch_status().unwrap().ok());

        let mut unwatched = Lasting::new(&store, |s| &mut s.not_watched);
        let mut unreadable = Lasting::new(&store, |s| &mut s.unreadable);
        unwatched.report("first".into());
        let first = store.watch_status().unwrap();
        let since = first.not_watched.as_ref().unwrap().since;
        assert!(!first.ok());
        assert!(first.unreadable.is_none());
        let warned = unwatched.warned;
        std::thread::sleep(Duration::from_millis(5));
        unwatched.report("second".into());
        unreadable.report("cannot look".into());
        let status = store.watch_status().unwrap();
        let trouble = status.not_watched.as_ref().unwrap();
        assert_eq!((trouble.since, trouble.message.as_str()), (since, "second"));
        assert_eq!(unwatched.warned, warned, "warned again only after a minute");
        assert_eq!(
            status
                .troubles()
                .map(|t| &t.message[..])
                .collect::<Vec<_>>(),
            ["second", "cannot look"]
        );

        unwatched.over();
        let status = store.watch_status().unwrap();
        assert!(status.not_watched.is_none() && status.unreadable.is_some());
        unreadable.over();
        assert!(store.watch_status().unwrap().ok());
        assert!(
            unwatched.warned.is_none(),
            "a new trouble is warned about at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn watch_events_are_debounced_into_one_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let metrics = Metrics::new();
        let store = store_with(dir.path(), metrics.clone());
        let (reloader, _task) = spawn_reload_loop(store.clone());
        for _ in 0..5 {
            reloader.request(Trigger::Watch);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::fs::write(dir.path().join("default.yaml"), GOOD.replace("100", "300")).unwrap();
        let outcome = reloader.reload(Trigger::Admin).await.unwrap();
        assert!(
            matches!(outcome, ReloadOutcome::Applied { .. }),
            "{outcome:?}"
        );
        // Five watch events 100 ms apart are one reload (unchanged), then the admin one.
        let text = metrics.render();
        assert!(
            text.contains(r#"confirm_proxy_reloads_total{result="unchanged"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"confirm_proxy_reloads_total{result="applied"} 1"#),
            "{text}"
        );
    }

    /// The files looked at for edits no event tells of: those reached through a link (a rule
    /// file, a rule test, a script, or a directory on a test's or script's way), not the regular files the
    /// watch hears about; an edit of one outside changes what is seen.
    #[test]
    fn linked_files_are_those_reached_through_a_link() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("vip.rhai"), "true").unwrap();
        std::fs::write(outside.path().join("shop.yaml"), GOOD).unwrap();
        std::fs::create_dir(outside.path().join("lib")).unwrap();
        std::fs::write(outside.path().join("lib/hours.rhai"), "true").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/local.rhai"), "true").unwrap();
        symlink(
            outside.path().join("vip.rhai"),
            dir.path().join("scripts/vip.rhai"),
        )
        .unwrap();
        symlink(outside.path().join("lib"), dir.path().join("lib")).unwrap();
        symlink(
            outside.path().join("shop.yaml"),
            dir.path().join("shop.yaml"),
        )
        .unwrap();
        // Kubernetes' links stay in the directory, which its watch covers.
        std::fs::create_dir(dir.path().join("..2026_12_07")).unwrap();
        std::fs::write(dir.path().join("..2026_12_07/cm.yaml"), GOOD).unwrap();
        symlink("..2026_12_07", dir.path().join("..data")).unwrap();
        symlink("..data/cm.yaml", dir.path().join("cm.yaml")).unwrap();
        let scripts =
            ["scripts/local.rhai", "scripts/vip.rhai", "lib/hours.rhai"].map(PathBuf::from);
        let seen = linked_files(dir.path(), &scripts);
        let paths: Vec<&Path> = seen.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(
            paths,
            [
                dir.path().join("lib/hours.rhai"),
                dir.path().join("scripts/vip.rhai"),
                dir.path().join("shop.yaml"),
            ]
        );
        assert!(seen.iter().all(|(_, state)| state.is_some()));
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(outside.path().join("lib/hours.rhai"), "false").unwrap();
        assert_ne!(linked_files(dir.path(), &scripts), seen);
        std::fs::remove_file(outside.path().join("shop.yaml")).unwrap();
        let gone = linked_files(dir.path(), &scripts);
        assert_eq!(gone.last().map(|(_, state)| *state), Some(None));
        // Audit: a hard link, edited through its other name, was never seen.
        std::fs::write(outside.path().join("hard.yaml"), GOOD).unwrap();
        std::fs::hard_link(
            outside.path().join("hard.yaml"),
            dir.path().join("hard.yaml"),
        )
        .unwrap();
        let seen = linked_files(dir.path(), &scripts);
        assert!(
            seen.iter().any(|(p, _)| p.ends_with("hard.yaml")),
            "{seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(outside.path().join("hard.yaml"), GOOD.replace("100", "200")).unwrap();
        assert_ne!(linked_files(dir.path(), &scripts), seen);
        // One behind a link that stays in the directory too.
        std::fs::create_dir(dir.path().join("store")).unwrap();
        std::fs::write(outside.path().join("r.yaml"), GOOD).unwrap();
        std::fs::hard_link(
            outside.path().join("r.yaml"),
            dir.path().join("store/r.yaml"),
        )
        .unwrap();
        symlink("store/r.yaml", dir.path().join("linked.yaml")).unwrap();
        let seen = linked_files(dir.path(), &scripts);
        assert!(
            seen.iter().any(|(p, _)| p.ends_with("linked.yaml")),
            "{seen:?}"
        );
        // A trial: `tests` linked to a directory elsewhere, whose files were edited unseen.
        std::fs::create_dir(outside.path().join("tests")).unwrap();
        std::fs::write(outside.path().join("tests/t.yaml"), "ruleset: default\n").unwrap();
        symlink(outside.path().join("tests"), dir.path().join("tests")).unwrap();
        let seen = linked_files(dir.path(), &scripts);
        assert!(
            seen.iter().any(|(p, _)| p.ends_with("tests/t.yaml")),
            "{seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(outside.path().join("tests/t.yaml"), "ruleset: shop\n").unwrap();
        assert_ne!(linked_files(dir.path(), &scripts), seen);
        // A test file added there is a change too.
        let seen = linked_files(dir.path(), &scripts);
        std::fs::write(outside.path().join("tests/u.yaml"), "ruleset: shop\n").unwrap();
        assert_ne!(linked_files(dir.path(), &scripts), seen);
    }

    /// Signals that come while a reload runs are answered by one more reload, not one each:
    /// a burst of twenty (a script, a supervisor) is two reloads at most, the last reading the
    /// files after every signal, and each caller waiting for an outcome gets one.
    #[tokio::test]
    async fn a_burst_of_signals_is_one_reload_after_the_one_running() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let metrics = Metrics::new();
        let store = store_with(dir.path(), metrics.clone());
        let (reloader, _task) = spawn_reload_loop(store.clone());
        for _ in 0..20 {
            reloader.request(Trigger::Signal);
        }
        let last = reloader.reload(Trigger::Admin).await.unwrap();
        assert!(matches!(last, ReloadOutcome::Unchanged { .. }), "{last:?}");
        let text = metrics.render();
        let count = text
            .lines()
            .find_map(|l| l.strip_prefix(r#"confirm_proxy_reloads_total{result="unchanged"} "#))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            ["1", "2"].contains(&count),
            "{count} reloads for 21 requests"
        );
    }

    /// A save refused because a file a link leads to outside the directory was held open for
    /// writing goes live once that file is closed, though no event of the watch tells of the
    /// close: it stayed refused until something else reloaded.
    #[tokio::test]
    async fn a_save_held_back_by_a_writer_outside_goes_live_when_it_closes() {
        let (outside, dir) = linked_from_outside();
        let target = outside.path().join("shop.yaml");
        let store = store_waiting(dir.path(), Duration::from_millis(500));
        let (reloader, _task) = spawn_reload_loop(store.clone());
        let _watcher = watch(dir.path(), reloader);
        let mut holder = held_for_writing(&target);
        std::fs::write(dir.path().join(".other.yaml.new"), GOOD).unwrap();
        std::fs::rename(
            dir.path().join(".other.yaml.new"),
            dir.path().join("other.yaml"),
        )
        .unwrap();
        // Refused while held (after the 500 ms wait), the running rules kept.
        assert!(
            within(Duration::from_secs(5), || store.last_error().is_some()).await,
            "no refusal while the file was held"
        );
        assert!(store.current().get("other").is_none());
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert!(
            within(Duration::from_secs(5), || store
                .current()
                .get("other")
                .is_some())
            .await,
            "the save never went live"
        );
    }

    /// Audit: a rule file written in two pieces with a pause went live half-written, with
    /// fewer rules, approving what the whole file refuses.
    #[tokio::test]
    async fn a_file_is_not_loaded_while_it_is_being_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let store = store(dir.path());
        let (reloader, _task) = spawn_reload_loop(store.clone());
        let _watcher = watch(dir.path(), reloader);
        let v1 = store.current().version.clone();

        // The first rule alone is a valid file; the second comes after a pause.
        let whole = "rules:\n  - name: a\n    amount: { max: 500 }\n    reason: x\n  - name: b\n    require: 'false'\n    reason: closed\n";
        let cut = whole.find("  - name: b").unwrap();
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&whole.as_bytes()[..cut]).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            store.current().version,
            v1,
            "nothing loads while the file is open"
        );

        file.write_all(&whole.as_bytes()[cut..]).unwrap();
        drop(file);
        within(Duration::from_secs(5), || store.current().version != v1).await;
        let rules = store.current();
        assert_ne!(rules.version, v1, "closing the file reloads");
        assert_eq!(
            rules.get("default").unwrap().rules.len(),
            2,
            "the whole file"
        );
        assert_eq!(rules.version, rules::rules_version(dir.path()).unwrap());
    }

    /// A SIGHUP while the reload queue is full of the watcher's events (a reload waiting for a
    /// writer, a tool touching files meanwhile) still reloads, and reports: it was dropped.
    #[tokio::test]
    async fn a_signal_is_heard_when_the_queue_is_full() {
        use notify::event::{DataChange, EventKind, ModifyKind};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let metrics = Metrics::new();
        let store = store_with(dir.path(), metrics.clone());
        let (reloader, _task) = spawn_reload_loop(store.clone());
        std::fs::write(&path, "rules: [oops").unwrap();
        // A writer holds the first reload back; the watcher's events fill the queue meanwhile.
        let written = notify::Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any)))
            .add_path(path.clone());
        store.activity.seen(&written);
        reloader.request(Trigger::Watch);
        tokio::time::sleep(DEBOUNCE_MAX + Duration::from_millis(200)).await;
        for _ in 0..100 {
            reloader.request(Trigger::Watch);
        }
        reloader.request(Trigger::Signal);
        store.activity.seen(
            &notify::Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
                .add_path(path.clone()),
        );
        let rejected = |n| format!("confirm_proxy_reloads_total{{result=\"rejected\"}} {n}\n");
        // The watcher's reload of the broken file, then the signal's, which reports again.
        assert!(
            within(Duration::from_secs(10), || metrics
                .render()
                .contains(&rejected(2)))
            .await,
            "{}",
            metrics.render()
        );
    }

    /// Another process holding a rules file open for writing is seen in `/proc`; one reading
    /// it, or writing a file no rules are read from (an editor's swap file), is not.
    #[test]
    fn a_rules_file_another_process_writes_is_found_in_proc() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("default.yaml");
        std::fs::write(&rules, GOOD).unwrap();
        let hold = |path: &Path, write: bool| {
            let file = std::fs::OpenOptions::new()
                .read(!write)
                .append(write)
                .create(write)
                .open(path)
                .unwrap();
            std::process::Command::new("sleep")
                .arg("30")
                .stdout(file)
                .spawn()
                .unwrap()
        };
        let found =
            || open_for_writing(dir.path(), &[], &rules::is_rule_source).map(|(path, _)| path);
        let mut reader = hold(&rules, false);
        let mut swap = hold(&dir.path().join(".default.yaml.swp"), true);
        assert_eq!(found(), None);
        let mut writer = hold(&rules, true);
        let canonical = std::fs::canonicalize(&rules).unwrap();
        assert_eq!(found(), Some(canonical));
        for child in [&mut reader, &mut swap, &mut writer] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert_eq!(found(), None);
        // A file deleted while a writer holds it, however named, is none of the rules'.
        let mut deleted = hold(&rules, true);
        std::fs::remove_file(&rules).unwrap();
        let mut gone = hold(&dir.path().join("notes"), true);
        std::fs::remove_file(dir.path().join("notes")).unwrap();
        assert_eq!(found(), None);
        for child in [&mut deleted, &mut gone] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(opened_for_writing(
            "pos:\t0\nflags:\t02100001\nmnt_id:\t30\n"
        ));
        assert!(opened_for_writing("flags:\t0100002\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
    }

    #[test]
    fn writes_are_tracked_until_the_file_is_closed_renamed_or_removed() {
        use notify::event::{DataChange, RemoveKind, RenameMode};
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        for name in ["a.yaml", "b.yaml", "c.yaml"] {
            std::fs::write(at(name), "").unwrap();
        }
        let activity = Activity::default();
        let event = |kind, name: &str| notify::Event::new(kind).add_path(at(name));
        activity.seen(&event(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "a.yaml",
        ));
        activity.seen(&event(EventKind::Create(CreateKind::File), "b.yaml"));
        activity.seen(&event(EventKind::Create(CreateKind::File), "c.yaml"));
        assert!(activity.writing().is_some());
        activity.seen(&event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "a.yaml",
        ));
        activity.seen(&event(
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            "b.yaml",
        ));
        assert_eq!(activity.writing(), Some(at("c.yaml")));
        activity.seen(&event(EventKind::Remove(RemoveKind::File), "c.yaml"));
        assert_eq!(activity.writing(), None);
        assert_eq!(activity.event(), 6);
    }

    /// A file that is never written and closed holds no reload: a FIFO, a hard link created
    /// with its content (`ln`, `git`), a file gone before its event is read.
    #[cfg(unix)]
    #[test]
    fn files_never_written_are_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("source.yaml"), "rules: []\n").unwrap();
        std::fs::hard_link(at("source.yaml"), at("linked.yaml")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(at("pipe.yaml"))
            .status()
            .unwrap();
        assert!(fifo.success());
        let activity = Activity::default();
        for name in ["linked.yaml", "pipe.yaml", "gone.yaml"] {
            let created =
                notify::Event::new(EventKind::Create(CreateKind::File)).add_path(at(name));
            activity.seen(&created);
        }
        assert_eq!(activity.writing(), None);
    }

    #[test]
    fn files_without_an_extension_count_only_as_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("decisions"), "{}\n").unwrap();
        assert!(concerns_rules(&dir.path().join("scripts")));
        assert!(concerns_rules(&dir.path().join("removed")));
        assert!(concerns_rules(&dir.path().join("..data")));
        assert!(!concerns_rules(&dir.path().join("decisions")));
    }

    #[test]
    fn yaml_files_not_named_dot_yaml_are_watched() {
        // The load warns about them (they are not rulesets): adding one reloads, so the
        // warning shows without waiting for another change.
        for name in ["rules/shop.yml", "rules/shop.YAML", "rules/shop.Yml"] {
            assert!(concerns_rules(Path::new(name)), "{name}");
        }
        assert!(!concerns_rules(Path::new("rules/shop.json")));
    }

    #[tokio::test]
    async fn scripts_of_any_name_reload_and_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, content: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        };
        write(
            "default.yaml",
            "rules:\n  - name: chk\n    script: scripts/chk.txt\n",
        );
        write("scripts/chk.txt", "\"a\"");
        let store = store(dir.path());
        let (reloader, _task) = spawn_reload_loop(store.clone());
        let concerns = |rel: &str| reloader.concerns(&dir.path().join(rel));
        assert!(concerns("scripts/chk.txt"));
        assert!(concerns("default.yaml"));
        assert!(!concerns("scripts/notes.txt"));
        assert!(!concerns("decisions.jsonl"));
        // However the watcher spells the directory.
        assert!(reloader.concerns(Path::new("rules/scripts/chk.txt")));
        // The directories a script is in, swapped whole (renamed, or a symlink flipped), even
        // with a dot in their name.
        assert!(reloader.concerns(Path::new("rules/scripts")));
        write(
            "default.yaml",
            "rules:\n  - name: chk\n    script: lib.d/chk.txt\n",
        );
        write("lib.d/chk.txt", "\"a\"");
        store.reload(Trigger::Signal).await;
        assert!(concerns("lib.d"));
        assert!(!concerns("other.d"));
        write(
            "default.yaml",
            "rules:\n  - name: chk\n    script: scripts/chk.txt\n",
        );
        store.reload(Trigger::Signal).await;

        let v1 = store.current().version.clone();
        write("scripts/chk.txt", "\"b\"");
        let ReloadOutcome::Applied { version: v2 } = store.reload(Trigger::Signal).await else {
            panic!("an edit of scripts/chk.txt is applied")
        };
        assert_ne!(v1, v2);
        assert!(matches!(
            store.reload(Trigger::Signal).await,
            ReloadOutcome::Unchanged { .. }
        ));

        // A reference to a script not written yet: the reload fails, yet the script is watched,
        // so writing it reloads.
        write(
            "default.yaml",
            "rules:\n  - name: chk\n    script: lib/new.js\n",
        );
        assert!(!concerns("lib/new.js"));
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Rejected { .. }
        ));
        assert!(concerns("lib/new.js"));
        write("lib/new.js", "true");
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Applied { .. }
        ));
    }
}
