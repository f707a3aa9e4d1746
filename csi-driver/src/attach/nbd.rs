//! The rbd-nbd attacher: librbd in user space behind an NBD device
//! (`rbd --device-type nbd map` -> /dev/nbdN). Needs the `nbd` kernel module and rbd-nbd.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{
    AttachError, Attached, Attacher, Broken, ImageSpec, Kind, Target, device, identity, krbd,
};
use crate::program::{self, ProgramError, SHORT};

#[derive(Debug)]
pub struct Nbd;

/// The nbd module is loaded and rbd-nbd is installed.
pub fn available() -> bool {
    Path::new("/sys/module/nbd").exists() && program::installed("rbd-nbd")
}

/// What rbd-nbd serves now (empty when it cannot say: nothing is then provably ours).
fn mapped() -> Vec<(PathBuf, ImageSpec)> {
    match program::run(
        Command::new("rbd-nbd").args(["list-mapped", "--format", "json"]),
        SHORT,
    ) {
        Ok(out) => identity::parse_nbd_list(&out),
        Err(e) => {
            tracing::warn!("rbd-nbd list-mapped: {e}");
            Vec::new()
        }
    }
}

fn verify(a: &Attached, want: &ImageSpec) -> Result<(), Broken> {
    let all = mapped();
    let found = all.iter().find(|(d, _)| *d == a.device).map(|(_, s)| s);
    identity::verify(&a.device, found, want)
}

impl Attacher for Nbd {
    fn attach(&self, t: &Target<'_>) -> Result<Attached, AttachError> {
        if !Path::new("/sys/module/nbd").exists() {
            return Err(AttachError::NoKernelModule { module: "nbd" });
        }
        if !program::installed("rbd-nbd") {
            return Err(ProgramError::Missing {
                program: "rbd-nbd".into(),
            }
            .into());
        }
        Ok(Attached {
            kind: Kind::RbdNbd,
            device: krbd::map("nbd", t)?,
            fuse: None,
            unmap_options: t.unmap_options.to_string(),
        })
    }

    fn detach(&self, a: &Attached, want: &ImageSpec) -> Result<(), AttachError> {
        if !device::exists(&a.device) {
            return Ok(());
        }
        if let Err(why) = verify(a, want) {
            tracing::warn!(device = %a.device.display(), "not unmapping: {why}");
            return Ok(());
        }
        krbd::unmap("nbd", &a.device, &a.unmap_options)
    }

    fn cleanup_unrecorded(&self, _work_dir: &Path, want: &ImageSpec, recorded: &[PathBuf]) {
        let all = mapped();
        for dev in identity::unrecorded(&all, want, recorded) {
            tracing::warn!(device = %dev.display(), image = %want, "unmapping a device of an unfinished stage");
            if let Err(e) = krbd::unmap("nbd", dev, "") {
                tracing::warn!(device = %dev.display(), "rbd unmap: {e}");
            }
        }
    }

    fn check(&self, a: &Attached, want: &ImageSpec) -> Result<(), Broken> {
        // An nbd device node exists whether or not it is connected; `pid` is set while
        // rbd-nbd serves it.
        let name = a.device.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if device::exists(&a.device) && Path::new(&format!("/sys/block/{name}/pid")).exists() {
            verify(a, want)
        } else {
            Err(Broken::NbdDisconnected {
                device: a.device.clone(),
            })
        }
    }

    fn refresh_size(&self, a: &Attached, _want: u64) -> Result<u64, AttachError> {
        // rbd-nbd watches the image and resizes the nbd device itself.
        device::size(&a.device)
            .map_err(|e| AttachError::io(format!("size of {}", a.device.display()), e))
    }
}
