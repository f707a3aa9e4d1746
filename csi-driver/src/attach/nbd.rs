//! The rbd-nbd attacher: librbd in user space behind an NBD device
//! (`rbd --device-type nbd map` -> /dev/nbdN). Needs the `nbd` kernel module and rbd-nbd.

use std::path::Path;

use super::{AttachError, Attached, Attacher, Kind, Target, device, krbd};
use crate::program::{self, ProgramError};

#[derive(Debug)]
pub struct Nbd;

/// The nbd module is loaded and rbd-nbd is installed.
pub fn available() -> bool {
    Path::new("/sys/module/nbd").exists() && program::installed("rbd-nbd")
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
        })
    }

    fn detach(&self, a: &Attached) -> Result<(), AttachError> {
        krbd::unmap("nbd", &a.device)
    }

    fn check(&self, a: &Attached) -> Result<(), String> {
        // An nbd device node exists whether or not it is connected; `pid` is set while
        // rbd-nbd serves it.
        let name = a.device.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if device::exists(&a.device) && Path::new(&format!("/sys/block/{name}/pid")).exists() {
            Ok(())
        } else {
            Err(format!(
                "{} is not connected (rbd-nbd is not running)",
                a.device.display()
            ))
        }
    }

    fn refresh_size(&self, a: &Attached, _want: u64) -> Result<u64, AttachError> {
        // rbd-nbd watches the image and resizes the nbd device itself.
        device::size(&a.device)
            .map_err(|e| AttachError::io(format!("size of {}", a.device.display()), e))
    }
}
