//! Which image a block device maps, as the kernel (or rbd-nbd) says now. A device recorded by
//! name is trusted only while it still maps the expected pool / namespace / image / snapshot:
//! after a reboot or a crash the kernel hands out the lowest free number, so the stash of
//! volume B can name the device that now holds image A. Pure functions over a sysfs root (unit
//! tests feed fixture trees) and over `rbd-nbd list-mapped` output.
//!
//! - krbd: `<sysfs>/bus/rbd/devices/<N>/{pool,pool_ns,name,current_snap}` for `/dev/rbd<N>`
//!   (`pool_ns` is missing on kernels without namespaces: the default namespace).
//! - rbd-nbd: `rbd-nbd list-mapped --format json`.
//! - fuse: the loop device's backing file (`<sysfs>/block/loopN/loop/backing_file`), which
//!   lies in the volume's private work dir and is named after the image.

use super::Broken;
use std::path::{Path, PathBuf};

/// An RBD image (or snapshot) as a mapping names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageSpec {
    pub pool: String,
    /// RADOS namespace; "" is the default one.
    pub namespace: String,
    pub image: String,
    /// None: the image itself (krbd writes `-`).
    pub snap: Option<String>,
}

impl ImageSpec {
    /// A volume: the image itself in RADOS namespace `namespace` ("" is the default one).
    pub fn volume(pool: &str, namespace: &str, image: &str) -> ImageSpec {
        ImageSpec {
            pool: pool.into(),
            namespace: namespace.into(),
            image: image.into(),
            snap: None,
        }
    }
}

impl std::fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/", self.pool)?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        write!(f, "{}", self.image)?;
        if let Some(s) = &self.snap {
            write!(f, "@{s}")?;
        }
        Ok(())
    }
}

fn snap(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s != "-").then(|| s.to_string())
}

fn read(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// The image krbd device `/dev/rbd<N>` maps, from `<sysfs>/bus/rbd/devices/<N>`.
pub fn krbd_mapping(sysfs: &Path, device: &Path) -> Option<ImageSpec> {
    let n: u32 = device
        .file_name()?
        .to_str()?
        .strip_prefix("rbd")?
        .parse()
        .ok()?;
    let dir = sysfs.join("bus/rbd/devices").join(n.to_string());
    Some(ImageSpec {
        pool: read(dir.join("pool"))?,
        namespace: read(dir.join("pool_ns")).unwrap_or_default(),
        image: read(dir.join("name"))?,
        snap: snap(&read(dir.join("current_snap")).unwrap_or_default()),
    })
}

/// Every krbd mapping on the host: (`/dev/rbd<N>`, image).
pub fn krbd_mappings(sysfs: &Path) -> Vec<(PathBuf, ImageSpec)> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("bus/rbd/devices")) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let dev = PathBuf::from(format!("/dev/rbd{}", e.file_name().to_str()?));
            let spec = krbd_mapping(sysfs, &dev)?;
            Some((dev, spec))
        })
        .collect();
    out.sort();
    out
}

/// `rbd-nbd list-mapped --format json` -> (device, image). Entries it cannot read are left
/// out (an unknown device is never ours).
pub fn parse_nbd_list(json: &str) -> Vec<(PathBuf, ImageSpec)> {
    #[derive(serde::Deserialize)]
    struct Entry {
        pool: String,
        #[serde(default)]
        namespace: String,
        image: String,
        #[serde(default)]
        snap: String,
        device: PathBuf,
    }
    serde_json::from_str::<Vec<Entry>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.device,
                ImageSpec {
                    pool: e.pool,
                    namespace: e.namespace,
                    image: e.image,
                    snap: snap(&e.snap),
                },
            )
        })
        .collect()
}

/// The file loop device `device` is bound to (None: free, or not a loop device).
pub fn loop_backing(sysfs: &Path, device: &Path) -> Option<PathBuf> {
    let n = device.file_name()?.to_str()?;
    let s = read(sysfs.join("block").join(n).join("loop/backing_file"))?;
    // The kernel appends " (deleted)" when the file is gone from its directory.
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s)))
}

/// Ok when `found` (what `device` maps now) is `want`; Err says what it maps instead.
pub fn verify(device: &Path, found: Option<&ImageSpec>, want: &ImageSpec) -> Result<(), Broken> {
    match found {
        Some(f) if f == want => Ok(()),
        Some(f) => Err(Broken::OtherImage {
            device: device.to_path_buf(),
            found: Box::new(f.clone()),
            want: Box::new(want.clone()),
        }),
        None => Err(Broken::MapsNothing {
            device: device.to_path_buf(),
            want: Box::new(want.clone()),
        }),
    }
}

/// Mappings of `want` that no stash records: what a crash between map and stash left.
pub fn unrecorded<'a>(
    mappings: &'a [(PathBuf, ImageSpec)],
    want: &ImageSpec,
    recorded: &[PathBuf],
) -> Vec<&'a Path> {
    mappings
        .iter()
        .filter(|(dev, spec)| spec == want && !recorded.contains(dev))
        .map(|(dev, _)| dev.as_path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs tree with krbd devices (id, pool, ns, name, snap) and loop devices.
    fn fixture(
        rbd: &[(u32, &str, Option<&str>, &str, &str)],
        loops: &[(&str, &str)],
    ) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (id, pool, ns, name, snap) in rbd {
            let d = t.path().join(format!("bus/rbd/devices/{id}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("pool"), format!("{pool}\n")).unwrap();
            if let Some(ns) = ns {
                std::fs::write(d.join("pool_ns"), format!("{ns}\n")).unwrap();
            }
            std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(d.join("current_snap"), format!("{snap}\n")).unwrap();
        }
        for (dev, back) in loops {
            let d = t.path().join(format!("block/{dev}/loop"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("backing_file"), format!("{back}\n")).unwrap();
        }
        t
    }

    #[test]
    fn krbd_renumbered_device_is_not_ours() {
        // After a reboot, volume B's stash says /dev/rbd0, which now maps image A.
        let t = fixture(
            &[
                (0, "rbd", Some(""), "img-a", "-"),
                (1, "rbd", Some(""), "img-b", "-"),
                (2, "rbd", None, "img-b", "snap1"),
                (3, "rbd", Some("tenant"), "img-b", "-"),
            ],
            &[],
        );
        let want = ImageSpec::volume("rbd", "", "img-b");
        let at = |d: &str| krbd_mapping(t.path(), Path::new(d));
        assert!(verify(Path::new("/dev/rbd1"), at("/dev/rbd1").as_ref(), &want).is_ok());
        let e = verify(Path::new("/dev/rbd0"), at("/dev/rbd0").as_ref(), &want).unwrap_err();
        assert!(
            e.to_string().contains("maps rbd/img-a now, not rbd/img-b"),
            "{e}"
        );
        // A snapshot or another namespace of the same name is another image.
        assert!(verify(Path::new("/dev/rbd2"), at("/dev/rbd2").as_ref(), &want).is_err());
        assert_eq!(at("/dev/rbd2").unwrap().snap.as_deref(), Some("snap1"));
        assert!(verify(Path::new("/dev/rbd3"), at("/dev/rbd3").as_ref(), &want).is_err());
        // Unmapped, or not an rbd device at all.
        assert!(verify(Path::new("/dev/rbd9"), at("/dev/rbd9").as_ref(), &want).is_err());
        assert_eq!(at("/dev/sda"), None);
        assert_eq!(at("/dev/rbd../x"), None);
    }

    #[test]
    fn unrecorded_mappings_of_the_image() {
        let t = fixture(
            &[
                (0, "rbd", Some(""), "img-a", "-"),
                (1, "rbd", Some(""), "img-b", "-"),
                (4, "rbd", Some(""), "img-b", "-"),
            ],
            &[],
        );
        let all = krbd_mappings(t.path());
        assert_eq!(all.len(), 3);
        let want = ImageSpec::volume("rbd", "", "img-b");
        let left = unrecorded(&all, &want, &[PathBuf::from("/dev/rbd1")]);
        assert_eq!(left, vec![Path::new("/dev/rbd4")]);
        assert!(krbd_mappings(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn nbd_list_mapped() {
        let out = r#"[{"id":4242,"pool":"rbd","namespace":"","image":"img-b","snap":"-","device":"/dev/nbd0"},
                      {"id":4243,"pool":"rbd","namespace":"","image":"img-a","snap":"-","device":"/dev/nbd1"}]"#;
        let m = parse_nbd_list(out);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, PathBuf::from("/dev/nbd0"));
        assert_eq!(m[0].1, ImageSpec::volume("rbd", "", "img-b"));
        assert!(parse_nbd_list("garbage").is_empty());
        assert!(parse_nbd_list("[]").is_empty());
    }

    #[test]
    fn loop_backing_files() {
        let t = fixture(
            &[],
            &[(
                "loop3",
                "/var/lib/berth-csi/volumes/ab/fuse/img-b (deleted)",
            )],
        );
        assert_eq!(
            loop_backing(t.path(), Path::new("/dev/loop3")),
            Some(PathBuf::from("/var/lib/berth-csi/volumes/ab/fuse/img-b"))
        );
        assert_eq!(loop_backing(t.path(), Path::new("/dev/loop4")), None);
        assert_eq!(ImageSpec::volume("p", "", "i").to_string(), "p/i");
        assert_eq!(ImageSpec::volume("p", "n", "i").to_string(), "p/n/i");
    }
}
