//! The suite's images: `FROM scratch`, assembled from host files (the `oneway` binary, `ip`,
//! `nft`, `tc`, coturn's `turnserver`, a shell, and the shared libraries `ldd` names), imported
//! with `docker import`. Tagged with the hash of their content, so an unchanged image is never
//! rebuilt. No image is pulled.
//!
//! Two variants ([`Variant`]): `base` (every container), and `browser` (the base files plus
//! Debian's `chromium` and `chromium-driver`), which is built only when a selected
//! implementation runs in it.
//!
//! The same machinery builds a third-party peer's image from host files ([`ImageEntry`],
//! [`build_custom`]; `oneway image`), for an implementer who has no registry and no Dockerfile
//! base to start from (`docs/implementers.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use testcontainers::bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};

use crate::Error;
use crate::docker::{Engine, LABEL};

/// Repository name of the suite's images.
pub const REPO: &str = "oneway-suite";

/// The list of host files (`docker/base.files`).
pub const BASE_FILES: &str = include_str!("../../../docker/base.files");

/// The files the browser variant adds (`docker/browser.files`).
pub const BROWSER_FILES: &str = include_str!("../../../docker/browser.files");

/// Where the peer binary goes in the image.
pub const PEER_PATH: &str = "/usr/local/bin/oneway";

/// Where the browser variant has Chromium and chromedriver (Debian's paths).
pub const CHROMIUM_PATH: &str = "/usr/lib/chromium/chromium";

/// An image variant: the value of a manifest's `image` that runs the peer inside its host
/// container (`docker exec`), in an image the suite builds itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// `oneway-suite:<hash>`: the host files of `docker/base.files`.
    Base,
    /// `oneway-suite-browser:<hash>`: the base files plus Debian's Chromium and chromedriver
    /// (`docker/browser.files`).
    Browser,
}

impl Variant {
    /// The variant a manifest's `image` names, `None` for a third-party image.
    pub fn from_image(image: &str) -> Option<Variant> {
        match image {
            "base" => Some(Variant::Base),
            "browser" => Some(Variant::Browser),
            _ => None,
        }
    }

    /// The name used in manifests and progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Base => "base",
            Variant::Browser => "browser",
        }
    }

    /// Repository name of this variant's images.
    pub fn repo(self) -> &'static str {
        match self {
            Variant::Base => REPO,
            Variant::Browser => "oneway-suite-browser",
        }
    }

    /// The file list of this variant.
    pub fn files(self) -> String {
        match self {
            Variant::Base => BASE_FILES.to_owned(),
            Variant::Browser => format!("{BASE_FILES}\n{BROWSER_FILES}"),
        }
    }
}

/// Most files a directory entry of a file list may add (bounded walk).
const MAX_DIR_FILES: usize = 20_000;

/// The regular files under `dir` (symlinks to files included, by their path), sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::Io {
            path: d.clone(),
            source: e,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::Io {
                    path: d.clone(),
                    source: e,
                })?
                .path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::Io {
                path: path.clone(),
                source: e,
            })?;
            if meta.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                out.push(path);
            }
            if out.len() > MAX_DIR_FILES {
                return Err(Error::Image(format!(
                    "{} has more than {MAX_DIR_FILES} files",
                    dir.display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a file is an ELF object (worth asking `ldd` about).
fn is_elf(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Files of the image, by path in the image.
#[derive(Debug, Default)]
pub struct Rootfs {
    /// Image path → host path.
    pub files: BTreeMap<String, PathBuf>,
    /// Optional tools that were not found on the host.
    pub missing: Vec<String>,
}

impl Rootfs {
    /// Collects the files: `peer` (the `oneway` binary) plus every path of `list`, plus their
    /// shared libraries.
    pub fn collect(peer: &Path, list: &str) -> Result<Rootfs, Error> {
        let mut rootfs = Rootfs::default();
        rootfs.files.insert(PEER_PATH.to_owned(), peer.to_owned());
        let mut binaries = vec![peer.to_owned()];
        for line in list.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (optional, path) = match line.strip_prefix('?') {
                Some(p) => (true, p),
                None => (false, line),
            };
            if path.ends_with('/') && Path::new(path).is_dir() {
                for file in walk(Path::new(path))? {
                    if is_elf(&file) {
                        binaries.push(file.clone());
                    }
                    rootfs
                        .files
                        .insert(file.display().to_string(), file.clone());
                }
            } else if Path::new(path).exists() {
                rootfs.files.insert(path.to_owned(), PathBuf::from(path));
                binaries.push(PathBuf::from(path));
            } else if optional {
                rootfs.missing.push(path.to_owned());
            } else {
                return Err(Error::Image(format!(
                    "{path} is missing on this host (install it: see ci/install.sh)"
                )));
            }
        }
        // Drop optional alternatives whose other spelling exists (tcpdump in bin or sbin).
        rootfs.missing.retain(|m| {
            let name = Path::new(m).file_name();
            !rootfs
                .files
                .keys()
                .any(|k| Path::new(k).file_name() == name)
        });
        for binary in binaries {
            for lib in ldd(&binary)? {
                rootfs.files.insert(lib.clone(), PathBuf::from(lib));
            }
        }
        Ok(rootfs)
    }

    /// Collects the files of a custom image: each entry's file, or every file under a
    /// directory entry, at its image path, plus the shared libraries `ldd` names for every ELF
    /// file among them. Unlike [`Rootfs::collect`] there is no `oneway` binary and no optional
    /// entry: a missing path is an error.
    pub fn from_entries(entries: &[ImageEntry]) -> Result<Rootfs, Error> {
        let mut rootfs = Rootfs::default();
        let mut binaries = Vec::new();
        for entry in entries {
            let meta = std::fs::metadata(&entry.host).map_err(|e| Error::Io {
                path: entry.host.clone(),
                source: e,
            })?;
            if meta.is_dir() {
                for file in walk(&entry.host)? {
                    let relative = file.strip_prefix(&entry.host).map_err(|_| {
                        Error::Image(format!("{} is outside its directory", file.display()))
                    })?;
                    let in_image = Path::new(&entry.image_path).join(relative);
                    if is_elf(&file) {
                        binaries.push(file.clone());
                    }
                    rootfs
                        .files
                        .insert(in_image.display().to_string(), file.clone());
                }
            } else {
                if is_elf(&entry.host) {
                    binaries.push(entry.host.clone());
                }
                rootfs
                    .files
                    .insert(entry.image_path.clone(), entry.host.clone());
            }
        }
        for binary in binaries {
            for lib in ldd(&binary)? {
                rootfs
                    .files
                    .entry(lib.clone())
                    .or_insert_with(|| PathBuf::from(lib));
            }
        }
        if rootfs.files.is_empty() {
            return Err(Error::Image("the image would hold no file".to_owned()));
        }
        Ok(rootfs)
    }

    /// Whether a tool is in the image.
    pub fn has(&self, name: &str) -> bool {
        self.files
            .keys()
            .any(|k| Path::new(k).file_name().is_some_and(|f| f == name))
    }

    /// The content hash (first 16 hex digits of SHA-256 over paths and contents).
    pub fn hash(&self) -> Result<String, Error> {
        let mut h = Sha256::new();
        h.update(ETC_PASSWD);
        for (path, host) in &self.files {
            h.update(path.as_bytes());
            h.update([0]);
            let bytes = std::fs::read(host).map_err(|e| Error::Io {
                path: host.clone(),
                source: e,
            })?;
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        let digest = h.finalize();
        Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// The rootfs as a tar archive.
    pub fn tar(&self) -> Result<Vec<u8>, Error> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |e: std::io::Error| Error::Io { path, source: e }
        };
        let mut builder = tar::Builder::new(Vec::new());
        for dir in [
            "tmp",
            "root",
            "run",
            "var",
            "var/tmp",
            "var/lib",
            "var/lib/turn",
            "etc",
            "proc",
            "sys",
            "dev",
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(if dir.ends_with("tmp") { 0o1777 } else { 0o755 });
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{dir}/"), std::io::empty())
                .map_err(io(Path::new(dir)))?;
        }
        for (name, content) in [
            ("etc/passwd", ETC_PASSWD),
            ("etc/group", "root:x:0:\n"),
            (
                "etc/nsswitch.conf",
                "hosts: files dns\npasswd: files\ngroup: files\n",
            ),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            builder
                .append_data(&mut header, name, content.as_bytes())
                .map_err(io(Path::new(name)))?;
        }
        for (path, host) in &self.files {
            let bytes = std::fs::read(host).map_err(io(host))?;
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_size(bytes.len() as u64);
            builder
                .append_data(&mut header, path.trim_start_matches('/'), bytes.as_slice())
                .map_err(io(host))?;
        }
        builder.into_inner().map_err(io(Path::new("rootfs.tar")))
    }
}

const ETC_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n";

/// The shared libraries of a binary, from `ldd` (absolute paths).
fn ldd(binary: &Path) -> Result<Vec<String>, Error> {
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::Image(format!("running ldd: {e}")))?;
    Ok(parse_ldd(&String::from_utf8_lossy(&output.stdout)))
}

/// The library paths in `ldd`'s output.
fn parse_ldd(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            // Diagnostics such as `/a.so: /b.so: version `X' not found (required by /a.so)`
            // (Firefox's libraries against the system NSS; Firefox loads its own) name no
            // library to copy.
            if l.contains("not found") {
                return None;
            }
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            (path.starts_with('/') && !path.ends_with(':')).then(|| path.to_owned())
        })
        .collect()
}

/// One entry of a custom image: a host file or directory and its path in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    /// Absolute path in the image (for a directory, where its contents go).
    pub image_path: String,
    /// The host file or directory.
    pub host: PathBuf,
}

impl ImageEntry {
    /// Parses `HOST` (same path in the image; HOST must then be absolute) or `IMAGE=HOST`.
    /// A relative HOST is resolved against `base` (the current directory on the command line,
    /// the list file's directory in a list).
    pub fn parse(spec: &str, base: &Path) -> Result<ImageEntry, Error> {
        let spec = spec.trim();
        let (image_path, host) = match spec.split_once('=') {
            Some((image, host)) => (image.trim().to_owned(), host.trim()),
            None => (spec.trim_end_matches('/').to_owned(), spec),
        };
        if !image_path.starts_with('/') {
            return Err(Error::Image(format!(
                "{spec}: the path in the image must be absolute (write IMAGE_PATH=HOST_PATH for a relative host path)"
            )));
        }
        let host = if Path::new(host).is_absolute() {
            PathBuf::from(host)
        } else {
            base.join(host)
        };
        Ok(ImageEntry {
            image_path: image_path.trim_end_matches('/').to_owned(),
            host,
        })
    }

    /// Parses a list: one entry per line; blank lines, lines starting with `#` and comments
    /// after white space and `#` are ignored; relative host paths are relative to `base` (the
    /// list file's directory).
    pub fn parse_list(text: &str, base: &Path) -> Result<Vec<ImageEntry>, Error> {
        text.lines()
            .map(|l| {
                let l = l.trim();
                match l.find(" #").or_else(|| l.find("\t#")) {
                    Some(at) => l[..at].trim_end(),
                    None => l,
                }
            })
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| ImageEntry::parse(l, base))
            .collect()
    }
}

/// What [`build_custom`] built.
#[derive(Clone, Debug)]
pub struct CustomImage {
    /// The tag given.
    pub tag: String,
    /// Files in the image (libraries included).
    pub files: usize,
    /// Size of the rootfs tar in bytes.
    pub bytes: usize,
    /// Seconds spent.
    pub seconds: f64,
}

/// Builds a `FROM scratch` image tagged `tag` (`name:version`) from `entries`, with the same
/// skeleton as the suite's images (a writable `/tmp`, `/etc/passwd` with `root` and
/// `nobody`), by `docker import`; replaces an image of the same tag. Nothing is pulled.
pub async fn build_custom(
    engine: &Engine,
    entries: &[ImageEntry],
    tag: &str,
) -> Result<CustomImage, Error> {
    let start = Instant::now();
    let (repo, version) = match tag.rsplit_once(':') {
        Some((repo, version)) if !repo.is_empty() && !version.contains('/') => (repo, version),
        _ => (tag, "latest"),
    };
    let rootfs = Rootfs::from_entries(entries)?;
    let tar = rootfs.tar()?;
    let bytes = tar.len();
    import(engine, tar, repo, version).await?;
    Ok(CustomImage {
        tag: format!("{repo}:{version}"),
        files: rootfs.files.len(),
        bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `docker import` of a rootfs tar as `repo:version`, labelled [`LABEL`]; checks that the
/// image exists afterwards.
async fn import(engine: &Engine, tar: Vec<u8>, repo: &str, version: &str) -> Result<(), Error> {
    let docker = engine.client();
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(version)
        .changes(vec![format!("LABEL {LABEL}=1")])
        .build();
    let mut stream = docker.create_image(
        Some(options),
        Some(testcontainers::bollard::body_full(tar.into())),
        None,
    );
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| Error::Image(format!("docker import: {e}")))?;
        if let Some(detail) = info.error_detail {
            return Err(Error::Image(format!(
                "docker import: {}",
                detail.message.unwrap_or_default()
            )));
        }
    }
    let tag = format!("{repo}:{version}");
    docker
        .inspect_image(&tag)
        .await
        .map_err(|e| Error::Image(format!("the imported image is missing: {e}")))?;
    Ok(())
}

/// What [`ensure`] did.
#[derive(Clone, Debug)]
pub struct Built {
    /// The variant.
    pub variant: Variant,
    /// `<repo>:<hash>`.
    pub tag: String,
    /// Whether the image was already there.
    pub cached: bool,
    /// Files in the image.
    pub files: usize,
    /// Size of the rootfs tar in bytes (0 when cached).
    pub bytes: usize,
    /// Seconds spent.
    pub seconds: f64,
    /// Optional tools that are absent.
    pub missing: Vec<String>,
}

/// Builds the variant's image unless one with the same content hash exists; removes older
/// images of that variant. `step` is told what is happening (for a progress line).
pub async fn ensure(
    engine: &Engine,
    peer: &Path,
    variant: Variant,
    step: &(dyn Fn(&str) + Sync),
) -> Result<(Built, Rootfs), Error> {
    let start = Instant::now();
    let repo = variant.repo();
    step("collecting host files");
    let rootfs = Rootfs::collect(peer, &variant.files())?;
    step(&format!("hashing {} files", rootfs.files.len()));
    let hash = rootfs.hash()?;
    let tag = format!("{repo}:{hash}");
    let docker = engine.client();
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok((
            Built {
                variant,
                tag,
                cached: true,
                files: rootfs.files.len(),
                bytes: 0,
                seconds: start.elapsed().as_secs_f64(),
                missing: rootfs.missing.clone(),
            },
            rootfs,
        ));
    }
    step("writing the rootfs archive");
    let tar = rootfs.tar()?;
    let bytes = tar.len();
    step(&format!("importing {} MB", bytes / 1_000_000));
    import(engine, tar, repo, &hash).await?;
    // Older images of this variant (other content hashes) are removed, so they do not pile
    // up; the other variant's images are kept.
    let filters = std::collections::HashMap::from([("reference", vec![repo])]);
    if let Ok(images) = docker
        .list_images(Some(
            ListImagesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
    {
        for image in images {
            let same_repo = !image.repo_tags.is_empty()
                && image
                    .repo_tags
                    .iter()
                    .all(|t| t.rsplit_once(':').is_some_and(|(r, _)| r == repo));
            if same_repo && !image.repo_tags.iter().any(|t| t == &tag) {
                let _ = docker
                    .remove_image(
                        &image.id,
                        Some(RemoveImageOptionsBuilder::new().force(false).build()),
                        None,
                    )
                    .await;
            }
        }
    }
    Ok((
        Built {
            variant,
            tag,
            cached: false,
            files: rootfs.files.len(),
            bytes,
            seconds: start.elapsed().as_secs_f64(),
            missing: rootfs.missing.clone(),
        },
        rootfs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_libraries_and_hash_is_stable() {
        let rootfs = Rootfs::collect(Path::new("/bin/sleep"), "/bin/sh\n?/no/such/tool\n").unwrap();
        assert!(rootfs.files.contains_key(PEER_PATH));
        assert!(rootfs.files.keys().any(|k| k.contains("libc.so")));
        assert_eq!(rootfs.missing, vec!["/no/such/tool".to_owned()]);
        assert_eq!(rootfs.hash().unwrap(), rootfs.hash().unwrap());
        assert!(Rootfs::collect(Path::new("/bin/sleep"), "/no/such/required").is_err());
    }

    #[test]
    fn directory_entries_add_their_files() {
        let dir = std::env::temp_dir().join(format!("oneway-image-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/data.txt"), "x").unwrap();
        std::fs::copy("/bin/sleep", dir.join("tool")).unwrap();
        let list = format!("{}/\n?/no/such/dir/\n", dir.display());
        let rootfs = Rootfs::collect(Path::new("/bin/sleep"), &list).unwrap();
        assert!(
            rootfs
                .files
                .contains_key(&format!("{}/sub/data.txt", dir.display()))
        );
        assert!(
            rootfs
                .files
                .contains_key(&format!("{}/tool", dir.display()))
        );
        assert!(rootfs.files.keys().any(|k| k.contains("libc.so")));
        assert_eq!(rootfs.missing, vec!["/no/such/dir/".to_owned()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ldd_diagnostics_name_no_library() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibmozsandbox.so => not found\n\
            /usr/lib/firefox-esr/libxul.so: /lib/x86_64-linux-gnu/libnss3.so: version `NSS_3.101' not found (required by /usr/lib/firefox-esr/libxul.so)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn custom_entries_parse_and_collect() {
        let base = Path::new("/work/x");
        assert_eq!(
            ImageEntry::parse("/bin/sh", base).unwrap(),
            ImageEntry {
                image_path: "/bin/sh".into(),
                host: "/bin/sh".into()
            }
        );
        assert_eq!(
            ImageEntry::parse("/app/peer.py=peer.py", base).unwrap(),
            ImageEntry {
                image_path: "/app/peer.py".into(),
                host: "/work/x/peer.py".into()
            }
        );
        assert!(ImageEntry::parse("peer.py", base).is_err());
        let dir = std::env::temp_dir().join(format!("oneway-image-custom-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("pkg/mod.py"), "x = 1").unwrap();
        let list = "# a comment\n/bin/sleep   # inline comment\n/app/=pkg/\n";
        let entries = ImageEntry::parse_list(list, &dir).unwrap();
        let rootfs = Rootfs::from_entries(&entries).unwrap();
        assert!(rootfs.files.contains_key("/bin/sleep"));
        assert_eq!(
            rootfs.files.get("/app/mod.py"),
            Some(&dir.join("pkg/mod.py"))
        );
        assert!(rootfs.files.keys().any(|k| k.contains("libc.so")));
        assert!(!rootfs.files.contains_key(PEER_PATH));
        assert!(
            Rootfs::from_entries(&[ImageEntry::parse("/no/such/file", base).unwrap()]).is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn variants_by_manifest_image() {
        assert_eq!(Variant::from_image("base"), Some(Variant::Base));
        assert_eq!(Variant::from_image("browser"), Some(Variant::Browser));
        assert_eq!(Variant::from_image("my-peer:1"), None);
        assert!(Variant::Browser.files().contains("/usr/lib/chromium/"));
        assert!(Variant::Browser.files().contains("/usr/lib/firefox-esr/"));
        assert!(
            Variant::Browser
                .files()
                .contains("/usr/local/bin/geckodriver")
        );
        assert_ne!(Variant::Base.repo(), Variant::Browser.repo());
    }
}
