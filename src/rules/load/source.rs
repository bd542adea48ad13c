//! Which files a load reads, and reading them: the rulesets of a directory, the rules version
//! over every file the load may read, and a file as UTF-8 text with bad bytes located.

use std::fs;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::super::model::RawScriptRefs;
use super::super::yaml::{self, Location};
use super::super::LoadError;

/// What the rules directory holds, by name.
pub(super) struct Listing {
    /// `*.yaml` files directly in the directory, by ruleset name.
    pub(super) rulesets: Vec<(String, PathBuf)>,
    /// `*.yaml` files whose name is not a ruleset name: errors at `FILE:1:1`.
    pub(super) bad_names: Vec<LoadError>,
    /// Warnings for files that look like rulesets but are not read (`shop.yml`, `shop.YAML`).
    pub(super) not_rulesets: Vec<String>,
}

/// The message for a `*.yaml` file whose name is not a ruleset name.
pub(super) const BAD_RULESET_NAME: &str = "not a ruleset name: the name before \".yaml\" may only hold letters (a-z, A-Z), digits, \"-\" and \"_\" (it is the ruleset's name in /confirm/{ruleset})";

/// What metrics, logs and the decision log call a ruleset that does not exist (a request to
/// `/confirm/typo`): a ruleset of that name could not be told apart from such requests.
pub(crate) const UNKNOWN_RULESET: &str = "unknown";

const RESERVED_NAME_MESSAGE: &str = "\"unknown\" is reserved: metrics, logs and the decision log count requests for a ruleset that does not exist under ruleset=\"unknown\"; give this ruleset another name";

/// Whether `stem` may name a ruleset: ASCII letters, digits, `-` and `_`.
fn is_ruleset_name(stem: &str) -> bool {
    !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads the rules directory: `*.yaml` files directly in `dir` are rulesets. Symlinks are
/// followed (Kubernetes mounts).
pub(super) fn ruleset_files(dir: &Path) -> Result<Listing, LoadError> {
    let entries = fs::read_dir(dir).map_err(|e| {
        // `eval body.json` run outside the project looks for ./rules there: said, with where.
        let hint = match std::env::current_dir() {
            Ok(cwd) if dir.is_relative() && e.kind() == std::io::ErrorKind::NotFound => format!(
                " (looked for in {}, where the command runs; give its path with --rules DIR)",
                cwd.join(dir).display()
            ),
            _ => String::new(),
        };
        LoadError {
            file: dir.to_owned(),
            location: None,
            message: format!("cannot read rules directory: {e}{hint}"),
        }
    })?;
    let mut listing = Listing {
        rulesets: Vec::new(),
        bad_names: Vec::new(),
        not_rulesets: Vec::new(),
    };
    let mut not_rulesets = Vec::new();
    let mut dangling = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            // A name in another encoding (`상점.yaml` saved as EUC-KR) is no ruleset name, and
            // must not go unmentioned: its rules would silently not be served.
            let lossy = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if lossy.is_some_and(|n| n.ends_with(".yaml") && !n.starts_with('.')) {
                listing.bad_names.push(LoadError {
                    file: path,
                    location: Some(Location::START),
                    message: format!("{BAD_RULESET_NAME}; this name is not even UTF-8 text"),
                });
            }
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        if !path.is_file() {
            // A ConfigMap key being removed leaves its link dangling for a moment, and a
            // removed file is a removed ruleset: said, not refused.
            if file_name.ends_with(".yaml") {
                // A link that leads back to itself is a deploy gone wrong, never a ruleset
                // removed on purpose: refused, the running rules stay (a trial's loop was
                // taken for a removal, its URL answering 404).
                if let Some(message) = link_loop(&path) {
                    listing.bad_names.push(LoadError {
                        file: path.clone(),
                        location: Some(Location::START),
                        message,
                    });
                    continue;
                }
                // A link to a file elsewhere that is not there (a release not unpacked yet, a
                // volume not mounted) is a deploy not in place, not a ruleset removed on
                // purpose: every payment to its URL would get 404 while the reload counted as
                // applied. Refused, the running rules stay.
                if let Some(missing) = dangling_link(&path).filter(|_| leads_outside(dir, &path)) {
                    listing.bad_names.push(LoadError {
                        file: path.clone(),
                        location: Some(Location::START),
                        message: format!("{missing}; a ruleset linked from outside the rules directory is not taken as removed while its target is missing (remove the link to remove the ruleset)"),
                    });
                    continue;
                }
                let what = dangling_link(&path).or_else(|| {
                    Some(if path.is_dir() {
                        // What a container's bind mount of a file that was not there makes.
                        "a directory, not a file (a container's bind mount of a file that did not exist on the host creates one)".to_owned()
                    } else {
                        "not a regular file".to_owned()
                    })
                    .filter(|_| path.symlink_metadata().is_ok())
                });
                if let Some(what) = what {
                    dangling.push(format!("{}: not read: {what}", path.display()));
                }
            }
            continue;
        }
        let Some(stem) = file_name.strip_suffix(".yaml") else {
            if is_misnamed_yaml(&path) {
                not_rulesets.push(path);
            }
            continue;
        };
        let refused = if stem == UNKNOWN_RULESET {
            Some(RESERVED_NAME_MESSAGE)
        } else {
            (!is_ruleset_name(stem)).then_some(BAD_RULESET_NAME)
        };
        if let Some(message) = refused {
            listing.bad_names.push(LoadError {
                file: path,
                location: Some(Location::START),
                message: message.into(),
            });
            continue;
        }
        listing.rulesets.push((stem.to_owned(), path));
    }
    listing.bad_names.sort_by(|a, b| a.file.cmp(&b.file));
    listing.rulesets.sort();
    not_rulesets.sort();
    listing.not_rulesets = not_rulesets
        .into_iter()
        .map(|path| {
            let stem = meant_stem(&path).unwrap_or("");
            let rename = if is_ruleset_name(stem) {
                format!(" (rename it to {stem}.yaml to load it)")
            } else {
                String::new()
            };
            format!(
                "{}: not a ruleset and not read: only files ending in \".yaml\" (lower case) are rulesets{rename}",
                path.display()
            )
        })
        .collect();
    dangling.sort();
    listing.not_rulesets.append(&mut dangling);
    Ok(listing)
}

/// Whether `path`, a link in `dir` or a path through one, leads out of `dir`, following every
/// link on the way even where what it names is missing (`current/shop.yaml` with `current` a
/// link to a release not there): Kubernetes' `NAME.yaml -> ..data/NAME.yaml` stays in.
pub(crate) fn leads_outside(dir: &Path, path: &Path) -> bool {
    let real = fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_owned());
    let at = fs::canonicalize(path).unwrap_or_else(|_| {
        leads_to(&std::path::absolute(path).unwrap_or_else(|_| path.to_owned()))
    });
    !at.starts_with(&real)
}

/// Where the absolute `path` leads: each link on it followed as far as the names go (at most
/// 40, as the kernel does), `.` and `..` resolved by name.
fn leads_to(path: &Path) -> PathBuf {
    let parts = |p: &Path| -> Vec<PathBuf> {
        p.components()
            .rev()
            .map(|c| PathBuf::from(c.as_os_str()))
            .collect()
    };
    let mut pending = parts(path);
    let mut at = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.to_str() {
            Some("/") => at = PathBuf::from("/"),
            Some(".") => {}
            Some("..") => {
                at.pop();
            }
            _ => {
                at.push(&part);
                if hops < 40 {
                    if let Ok(link) = fs::read_link(&at) {
                        hops += 1;
                        at.pop();
                        pending.extend(parts(&link));
                    }
                }
            }
        }
    }
    at
}

/// "a symlink to TARGET, which does not exist" when `path` is such a link: the plain "No such
/// file or directory" of a dangling link names a file the operator can see. When TARGET is a
/// link itself, it is the end of the chain that is missing, which is said.
pub(crate) fn dangling_link(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    if path.exists() || link_loop(path).is_some() {
        return None;
    }
    let first = path.parent().unwrap_or(Path::new("")).join(&target);
    Some(if fs::symlink_metadata(&first).is_ok() {
        format!(
            "a symlink to {}, a link to a file that does not exist",
            target.display()
        )
    } else {
        format!("a symlink to {}, which does not exist", target.display())
    })
}

/// What is wrong with `path` when following its links never ends (a link to itself, or two to
/// each other).
pub(crate) fn link_loop(path: &Path) -> Option<String> {
    let e = fs::metadata(path).err()?;
    let target = fs::read_link(path).ok()?;
    (e.raw_os_error() == Some(libc::ELOOP)).then(|| {
        format!(
            "a symlink to {}, which leads back to itself (a loop of links); point it at the file",
            target.display()
        )
    })
}

/// An I/O error reading `path`, said for an operator (see [`dangling_link`]).
pub(crate) fn io_message(path: &Path, e: &std::io::Error) -> String {
    match dangling_link(path) {
        Some(link) if e.kind() == std::io::ErrorKind::NotFound => link,
        _ => link_loop(path).unwrap_or_else(|| e.to_string()),
    }
}

/// A YAML file whose extension is not exactly `.yaml` (`shop.yml`, `shop.YAML`, and
/// `shop.yaml.txt`, as Windows Notepad saves a file whose extensions Explorer hides): someone
/// meant a ruleset (or a rule test), but it is not read. The load warns about such files
/// directly in the rules directory; rule tests refuse them.
pub(crate) fn is_misnamed_yaml(path: &Path) -> bool {
    meant_stem(path).is_some()
}

/// The name a misnamed YAML file was meant to have, without `.yaml` (`shop` for `shop.yml`).
fn meant_stem(path: &Path) -> Option<&str> {
    let yaml = |e: &str| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml");
    let name = path.file_name()?.to_str()?;
    // `.yml` alone is a hidden file, no extension.
    let (stem, extension) = name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty())?;
    if extension == "yaml" {
        return None;
    }
    if yaml(extension) {
        return Some(stem);
    }
    let (stem, inner) = stem.rsplit_once('.')?;
    (extension.eq_ignore_ascii_case("txt") && yaml(inner)).then_some(stem)
}

/// The rules version: a short hash of the files the load reads, so operators can tell which
/// rules answered, and a reload can skip a directory that did not change.
///
/// It covers every `.yaml` and `.rhai` file under the directory (rulesets, rule tests under
/// `tests/`, scripts, also ones no rule references yet), YAML files named otherwise (`.yml`,
/// `.YAML`: the load warns about them) and every script a ruleset references
/// whatever its name (`script: scripts/check.txt`), found by reading the `script:` keys of the
/// ruleset files. Every other file is left out on purpose rather than hashing "every regular
/// file": a decision log or notes kept in the directory would otherwise change the version (and,
/// through the watcher, reload the rules) on every write. Hidden files, names ending in `~`
/// (editor swap files and backups) and Kubernetes' `..data` internals are skipped; a ConfigMap's
/// visible names link through `..data`, so its content still counts.
///
/// Only an unreadable rules directory is an error. Whatever else cannot be read (a root-only
/// `lost+found`, a dangling link, a script without read permission) counts as "unreadable" with
/// its error: the version is a change detector, and whether such a file matters is the load's
/// to say, naming it. Making it readable again changes the version and so reloads.
pub fn rules_version(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.extend(referenced_scripts(dir));
    files.sort();
    files.dedup();
    let mut hash = Sha256::new();
    for rel in files {
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        // Read as the load reads it: a FIFO or device is never opened, a file too large not
        // read past its limit.
        match read_source(&dir.join(&rel)) {
            Ok(content) => {
                hash.update((content.len() as u64).to_le_bytes());
                hash.update(&content);
            }
            // What the load will say instead: a referenced script that is missing (creating it
            // changes the version), a FIFO, a file too large (its size is in the message, so
            // it growing changes the version too), a file removed between listing and reading.
            Err(e) => {
                hash.update(u64::MAX.to_le_bytes());
                hash.update(e.to_string().as_bytes());
            }
        }
    }
    Ok(hex::encode(&hash.finalize()[..6]))
}

/// A rules file, script or rule test's bytes: only a regular file of at most
/// [`MAX_SOURCE_BYTES`] is read, else an error saying what it is. Looked at through the open
/// handle itself, so that nothing can be put in the file's place between the look and the read.
fn read_source(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = open_without_waiting(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::other("a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(Error::other(
            "not a regular file (a FIFO, socket or device), never read",
        ));
    }
    let too_large = |len: u64| {
        Error::new(
            ErrorKind::InvalidData,
            format!(
                "{len} bytes, larger than the {} KiB a rules file or script may hold",
                MAX_SOURCE_BYTES / 1024
            ),
        )
    };
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1).read_to_end(&mut bytes)?;
    // Grown since it was looked at.
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Opens a file for reading without waiting: opening a FIFO's reading end waits for a writer,
/// unless non-blocking (what is opened is then looked at before anything is read from it).
fn open_without_waiting(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Every script the ruleset files in `dir` reference (`script:`), relative to `dir` and without
/// `.` components, whatever its extension. Read leniently from files that may not load; paths
/// the loader refuses (absolute, with `..`) are left out.
pub fn referenced_scripts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut scripts = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".yaml") || name.starts_with('.') || !path.is_file() {
            continue;
        }
        let Ok(src) = read_yaml_text(&path) else {
            continue;
        };
        let Ok(refs) = yaml::from_str::<RawScriptRefs>(&src) else {
            continue;
        };
        scripts.extend(
            refs.rules
                .iter()
                .filter_map(|r| r.script.as_deref())
                .filter_map(script_rel_path),
        );
    }
    scripts.sort();
    scripts.dedup();
    scripts
}

/// `rel` as a path inside the rules directory without `.` components, or `None` when the loader
/// refuses it (empty, absolute, or with `..`).
fn script_rel_path(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

pub(super) fn collect_files(root: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    Walk::default().dir(root, Path::new(""), 0, out)
}

/// The most entries a walk of the rules directory reads, the directories it links to
/// included: far above any rules directory, and bounding a link to a large tree (`ln -s /`
/// there, a link to a home directory), which would otherwise be walked on every look for
/// edits, holding every reload, and start-up, behind it.
const MAX_ENTRIES: usize = 20_000;

/// A walk of the rules directory: the directories read (a directory linked twice, or a link
/// loop, is read once) and the entries seen.
#[derive(Default)]
struct Walk {
    read: std::collections::HashSet<(u64, u64)>,
    entries: usize,
}

impl Walk {
    fn dir(
        &mut self,
        root: &Path,
        rel: &Path,
        depth: usize,
        out: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        // Symlinked directories are followed; each is read once, and the depth bound stops a
        // chain of links.
        if depth > 8 {
            return Ok(());
        }
        if let Ok(meta) = fs::metadata(root.join(rel)) {
            if !self.read.insert((meta.dev(), meta.ino())) {
                return Ok(());
            }
        }
        let entries = match fs::read_dir(root.join(rel)) {
            Ok(entries) => entries,
            Err(e) if depth == 0 => return Err(e),
            // A subdirectory no one may read (`lost+found`): nothing in it can be loaded either,
            // and a script or test the rules need from it is named by the load.
            Err(_) => return Ok(()),
        };
        for entry in entries.flatten() {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(std::io::Error::other(format!(
                "the rules directory, with the directories it links to, holds more than {MAX_ENTRIES} entries: a symlink to a large tree (/, a home directory)? Only rule files, scripts and rule tests belong there"
            )));
            }
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                // A ruleset file whose name is not UTF-8 is an error of the load (as at start-up),
                // and a rule test so named is run: it changes the version, so that a reload
                // reads it (a trial's failing test so named went unseen until another edit).
                if name.as_encoded_bytes().ends_with(b".yaml") {
                    out.push(rel.join(&name));
                }
                continue;
            };
            if name_str.starts_with('.') || name_str.ends_with('~') {
                continue;
            }
            let rel_path = rel.join(&name);
            match fs::metadata(root.join(&rel_path)) {
                Ok(meta) if meta.is_dir() => {
                    // A directory named like a rule file is warned about by the load (at the top,
                    // where rulesets are): its coming and going changes the version too.
                    if depth == 0 && is_rule_source(&rel_path) {
                        out.push(rel_path.clone());
                    }
                    self.dir(root, &rel_path, depth + 1, out)?;
                }
                // Neither a file nor a directory (a FIFO): named, never read.
                Ok(_) if is_rule_source(&rel_path) => out.push(rel_path),
                Ok(_) => {}
                // A dangling link named like a rule file: hashed as unreadable, so that its target
                // appearing changes the version.
                Err(_) if is_rule_source(&rel_path) => out.push(rel_path),
                Err(_) => {}
            }
        }
        Ok(())
    }
}

/// Files the loader may read, known by name: rule files, rule tests and `.rhai` scripts. A
/// script with another name counts through [`referenced_scripts`]. Anything else in the
/// directory (a decision log someone put there, notes) neither changes the version nor reloads.
///
/// YAML files with another extension (`.yml`, `.YAML`) count too: the load warns about them in
/// the rules directory, so adding, renaming or removing one must reload and change the version
/// (the warnings are part of what a version loaded).
pub fn is_rule_source(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "rhai") || is_misnamed_yaml(path)
}

/// Why a rule file or script could not be read as text.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// Not UTF-8 from `location` (the first invalid byte, its column counted in characters
    /// like every other location); `detail` says what was found there.
    Utf8 {
        location: Location,
        detail: String,
    },
    /// A YAML file with more than [`yaml::MAX_FLOW_DEPTH`] `[` and `{` open at once.
    TooDeep(Location),
}

impl ReadError {
    /// As reported for `file`; `suffix` is appended to the message (which rule a script is for).
    pub(crate) fn into_load_error(self, file: PathBuf, suffix: &str) -> LoadError {
        match self {
            ReadError::Io(e) => LoadError {
                message: format!("cannot read: {}{suffix}", io_message(&file, &e)),
                file,
                location: Some(Location::START),
            },
            ReadError::Utf8 { location, detail } => LoadError {
                file,
                location: Some(location),
                message: format!("not valid UTF-8 ({detail}); save the file as UTF-8{suffix}"),
            },
            ReadError::TooDeep(location) => LoadError {
                file,
                location: Some(location),
                message: format!(
                    "more than {} [ and {{ open at once here: no rule or test file nests that deep, and YAML would take minutes to read it; close them{suffix}",
                    yaml::MAX_FLOW_DEPTH
                ),
            },
        }
    }
}

/// The most a rule file, script or rule test may hold; the shipped ones are a few KiB.
pub(crate) const MAX_SOURCE_BYTES: u64 = 1024 * 1024;

/// [`read_text`] for a YAML file (rules, rule tests): also refused, before any YAML parser
/// sees it, when it nests flow collections deeper than [`yaml::MAX_FLOW_DEPTH`].
pub(crate) fn read_yaml_text(path: &Path) -> Result<String, ReadError> {
    let src = read_text(path)?;
    match yaml::too_deep(&src) {
        Some(at) => Err(ReadError::TooDeep(at)),
        None => Ok(src),
    }
}

/// Reads a whole file as UTF-8 text; invalid UTF-8 is located at its first bad byte. Only a
/// regular file of at most [`MAX_SOURCE_BYTES`] is read: opening a FIFO waits for a writer
/// (the reload would hang), and a link to a device such as `/dev/zero` never ends.
pub(crate) fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_source(path).map_err(ReadError::Io)?;
    // Some Windows editors start UTF-8 files with a byte-order mark: no text, and Rhai would
    // stop at it ("unexpected '\u{feff}'"); YAML skips it anyway.
    let bytes = match bytes.strip_prefix("\u{feff}".as_bytes()) {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    String::from_utf8(bytes)
        .map_err(|e| {
            let err = e.utf8_error();
            let bytes = e.as_bytes();
            let at = err.valid_up_to();
            // Valid by definition of `valid_up_to`.
            let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
            // Lines end at a lone CR too, as below.
            let location = Location::after(&lone_cr_as_lf(valid.to_owned()));
            let detail = match err.error_len() {
                Some(_) => format!("byte 0x{:02X}", bytes[at]),
                None => "the file ends inside a character".to_owned(),
            };
            ReadError::Utf8 { location, detail }
        })
        .map(lone_cr_as_lf)
}

/// A line break written as a lone CR (old Mac editors, a stray one in a CRLF file) as LF, the
/// only break Rhai counts: editors and YAML break lines at it, so a script's error positions
/// would otherwise name another line than the one an editor shows. Inside a string too, which
/// an editor shows broken there (a text in backticks then holds LF; one in quotes is a load
/// error, as any line break in it is). The same length, so byte offsets stay.
fn lone_cr_as_lf(text: String) -> String {
    if !text.contains('\r') {
        return text;
    }
    let mut bytes = text.into_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
            bytes[i] = b'\n';
        }
    }
    // Only one ASCII byte was replaced by another.
    String::from_utf8(bytes).unwrap_or_default()
}
