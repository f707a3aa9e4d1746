//! The krbd attacher: the kernel RBD client (`rbd --device-type krbd map` -> /dev/rbdN).
//! Production hosts use it; it needs the `rbd` kernel module, which is checked first so the
//! user gets an actionable message instead of a sysfs write error.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{AttachError, Attached, Attacher, Broken, ImageSpec, Kind, Target, device, identity};
use crate::program::{self, LONG, ProgramError, SHORT};

#[derive(Debug)]
pub struct Krbd;

/// Where the kernel publishes devices (a parameter of the pure identity functions).
const SYSFS: &str = "/sys";

/// The rbd module is loaded (its bus is registered).
pub fn available() -> bool {
    Path::new("/sys/bus/rbd").exists()
}

/// `rbd [...] map` through `device_type` (krbd or nbd); errors turned into what a user can act on.
pub(super) fn map(device_type: &str, t: &Target<'_>) -> Result<PathBuf, AttachError> {
    let mut cmd = Command::new("rbd");
    cmd.arg("-c")
        .arg(&t.client.conf)
        .args(["--id", &t.client.user, "--device-type", device_type, "map"])
        .arg(t.spec());
    if t.read_only {
        cmd.arg("--read-only");
    }
    if !t.map_options.is_empty() {
        cmd.args(["-o", t.map_options]);
    }
    match program::run(&mut cmd, LONG) {
        Ok(out) => Ok(PathBuf::from(out.trim())),
        Err(e) => Err(classify(e, &t.pool_spec(), t.image)),
    }
}

/// `rbd --device-type <t> unmap [-o <unmapOptions>] <dev>` (pure, for tests).
pub(super) fn unmap_command(device_type: &str, dev: &Path, options: &str) -> Command {
    let mut cmd = Command::new("rbd");
    cmd.args(["--device-type", device_type, "unmap"]);
    if !options.is_empty() {
        cmd.args(["-o", options]);
    }
    cmd.arg(dev);
    cmd
}

pub(super) fn unmap(device_type: &str, dev: &Path, options: &str) -> Result<(), AttachError> {
    if !device::exists(dev) {
        return Ok(());
    }
    match program::run(&mut unmap_command(device_type, dev, options), SHORT) {
        Ok(_) => Ok(()),
        Err(_) if !device::exists(dev) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Map rbd's error text to what the user should do.
pub(super) fn classify(e: ProgramError, pool: &str, image: &str) -> AttachError {
    let err = e.stderr().to_string();
    if err.contains("feature set mismatch") || err.contains("unsupported features") {
        let features = err
            .split("features:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("(see `rbd info`)")
            .to_string();
        return AttachError::UnsupportedFeatures { features };
    }
    if err.contains("Module rbd not found") || err.contains("failed to load rbd kernel module") {
        return AttachError::NoKernelModule { module: "rbd" };
    }
    if err.contains("Module nbd not found") || err.contains("failed to load nbd kernel module") {
        return AttachError::NoKernelModule { module: "nbd" };
    }
    if err.contains("No such file or directory")
        && (err.contains("error opening image") || err.contains("image not found"))
    {
        return AttachError::ImageNotFound {
            pool: pool.into(),
            image: image.into(),
        };
    }
    e.into()
}

impl Attacher for Krbd {
    fn attach(&self, t: &Target<'_>) -> Result<Attached, AttachError> {
        if !available() {
            return Err(AttachError::NoKernelModule { module: "rbd" });
        }
        Ok(Attached {
            kind: Kind::Krbd,
            device: map("krbd", t)?,
            fuse: None,
            unmap_options: t.unmap_options.to_string(),
        })
    }

    fn detach(&self, a: &Attached, want: &ImageSpec) -> Result<(), AttachError> {
        if !device::exists(&a.device) {
            return Ok(());
        }
        let found = identity::krbd_mapping(Path::new(SYSFS), &a.device);
        if let Err(why) = identity::verify(&a.device, found.as_ref(), want) {
            tracing::warn!(device = %a.device.display(), "not unmapping: {why}");
            return Ok(());
        }
        unmap("krbd", &a.device, &a.unmap_options)
    }

    fn check(&self, a: &Attached, want: &ImageSpec) -> Result<(), Broken> {
        if !device::exists(&a.device) {
            return Err(Broken::Unmapped {
                device: a.device.clone(),
            });
        }
        let found = identity::krbd_mapping(Path::new(SYSFS), &a.device);
        identity::verify(&a.device, found.as_ref(), want)
    }

    fn cleanup_unrecorded(&self, _work_dir: &Path, want: &ImageSpec, recorded: &[PathBuf]) {
        let all = identity::krbd_mappings(Path::new(SYSFS));
        for dev in identity::unrecorded(&all, want, recorded) {
            // The kernel refuses to unmap a device that is open (mounted, in use).
            tracing::warn!(device = %dev.display(), image = %want, "unmapping a device of an unfinished stage");
            if let Err(e) = unmap("krbd", dev, "") {
                tracing::warn!(device = %dev.display(), "rbd unmap: {e}");
            }
        }
    }

    fn refresh_size(&self, a: &Attached, _want: u64) -> Result<u64, AttachError> {
        // krbd watches the image header: the device grows by itself.
        device::size(&a.device)
            .map_err(|e| AttachError::io(format!("size of {}", a.device.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> ProgramError {
        ProgramError::Failed {
            command: "rbd map".into(),
            status: "exit status: 6".into(),
            code: Some(6),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn unmap_passes_unmap_options() {
        let d = |o| program::describe(&unmap_command("krbd", Path::new("/dev/rbd3"), o));
        assert_eq!(d(""), "rbd --device-type krbd unmap /dev/rbd3");
        assert_eq!(
            d("force"),
            "rbd --device-type krbd unmap -o force /dev/rbd3"
        );
    }

    #[test]
    fn rbd_errors_become_advice() {
        let e = classify(
            failed(
                "rbd: sysfs write failed\nRBD image feature set mismatch. ... image uses unsupported features: 0x38",
            ),
            "p",
            "i",
        );
        assert!(
            matches!(&e, AttachError::UnsupportedFeatures { features } if features == "0x38"),
            "{e}"
        );
        assert!(e.to_string().contains("imageFeatures=layering"));
        let e = classify(
            failed(
                "modprobe: FATAL: Module rbd not found in directory /lib/modules/6.1\nrbd: failed to load rbd kernel module (1)",
            ),
            "p",
            "i",
        );
        assert!(matches!(e, AttachError::NoKernelModule { module: "rbd" }));
        let e = classify(
            failed("rbd: error opening image i: (2) No such file or directory"),
            "p",
            "i",
        );
        assert!(matches!(e, AttachError::ImageNotFound { .. }));
        assert!(matches!(
            classify(failed("something else"), "p", "i"),
            AttachError::Program(_)
        ));
    }
}
