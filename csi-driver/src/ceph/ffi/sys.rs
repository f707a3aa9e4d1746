//! Raw C declarations for the slice of librados / librbd (Ceph 16.2 Pacific,
//! `/usr/include/rados/librados.h`, `/usr/include/rbd/librbd.h`) that berth uses. Nothing here
//! is safe to call directly: the sibling modules wrap every function. The functions are
//! resolved at run time ([`super::loader`]), not linked: a process that never calls them never
//! maps the libraries.

use std::os::raw::{c_char, c_int, c_void};

use super::loader::{ceph_api, ret_or_unit};

pub type RadosT = *mut c_void;
pub type IoCtxT = *mut c_void;
pub type WriteOpT = *mut c_void;
pub type ReadOpT = *mut c_void;
pub type OmapIterT = *mut c_void;
pub type ImageT = *mut c_void;
pub type ImageOptionsT = *mut c_void;

/// `enum rbd_image_option` values (librbd.h).
pub const RBD_IMAGE_OPTION_FEATURES: c_int = 1;
pub const RBD_IMAGE_OPTION_DATA_POOL: c_int = 10;
pub const RBD_IMAGE_OPTION_CLONE_FORMAT: c_int = 12;

#[repr(C)]
pub struct TrashImageInfoT {
    pub id: *mut c_char,
    pub name: *mut c_char,
    pub source: c_int,
    pub deletion_time: libc::time_t,
    pub deferment_end_time: libc::time_t,
}

#[repr(C)]
pub struct ClusterStatT {
    pub kb: u64,
    pub kb_used: u64,
    pub kb_avail: u64,
    pub num_objects: u64,
}

#[repr(C)]
pub struct ImageSpecT {
    pub id: *mut c_char,
    pub name: *mut c_char,
}

#[repr(C)]
pub struct SnapInfoT {
    pub id: u64,
    pub size: u64,
    pub name: *const c_char,
}

#[repr(C)]
pub struct LinkedImageSpecT {
    pub pool_id: i64,
    pub pool_name: *mut c_char,
    pub pool_namespace: *mut c_char,
    pub image_id: *mut c_char,
    pub image_name: *mut c_char,
    pub trash: bool,
}

#[repr(C)]
pub struct SnapSpecT {
    pub id: u64,
    /// `rbd_snap_namespace_type_t` (a C enum: int-sized).
    pub namespace_type: c_int,
    pub name: *mut c_char,
}

/// `rbd_snap_group_namespace_t` (librbd.h): the group snapshot an image snapshot belongs to.
#[repr(C)]
pub struct SnapGroupNamespaceT {
    pub group_pool: i64,
    pub group_name: *mut c_char,
    pub group_snap_name: *mut c_char,
}

/// `RBD_SNAP_NAMESPACE_TYPE_GROUP` (librbd.h).
pub const SNAP_NAMESPACE_TYPE_GROUP: c_int = 1;

#[repr(C)]
pub struct ImageWatcherT {
    pub addr: *mut c_char,
    pub id: i64,
    pub cookie: u64,
}

/// `librbd_progress_fn_t` (librbd.h): `(offset, total, data)`; a non-zero return is ignored by
/// flatten.
pub type ProgressFn = Option<unsafe extern "C" fn(u64, u64, *mut c_void) -> c_int>;

/// `LIBRADOS_CMPXATTR_OP_EQ` (librados.h).
pub const CMPXATTR_OP_EQ: u8 = 1;
/// `LIBRADOS_CREATE_IDEMPOTENT` (librados.h): create the object unless it exists.
pub const CREATE_IDEMPOTENT: c_int = 0;

ceph_api! {
    RadosApi via rados;
    fn rados_create2(
        cluster: *mut RadosT,
        clustername: *const c_char,
        name: *const c_char,
        flags: u64,
    ) -> c_int;
    fn rados_conf_set(cluster: RadosT, option: *const c_char, value: *const c_char) -> c_int;
    fn rados_connect(cluster: RadosT) -> c_int;
    fn rados_shutdown(cluster: RadosT);
    fn rados_cluster_stat(cluster: RadosT, result: *mut ClusterStatT) -> c_int;
    fn rados_ioctx_create(cluster: RadosT, pool: *const c_char, io: *mut IoCtxT) -> c_int;
    fn rados_ioctx_destroy(io: IoCtxT);
    fn rados_ioctx_set_namespace(io: IoCtxT, nspace: *const c_char);
    fn rados_ioctx_get_cluster(io: IoCtxT) -> RadosT;
    fn rados_get_instance_id(cluster: RadosT) -> u64;

    fn rados_create_write_op() -> WriteOpT;
    fn rados_release_write_op(op: WriteOpT);
    fn rados_write_op_omap_set2(
        op: WriteOpT,
        keys: *const *const c_char,
        vals: *const *const c_char,
        key_lens: *const usize,
        val_lens: *const usize,
        num: usize,
    );
    fn rados_write_op_omap_rm_keys2(
        op: WriteOpT,
        keys: *const *const c_char,
        key_lens: *const usize,
        num: usize,
    );
    fn rados_write_op_create(op: WriteOpT, exclusive: c_int, category: *const c_char);
    fn rados_write_op_omap_cmp2(
        op: WriteOpT,
        key: *const c_char,
        comparison_operator: u8,
        val: *const c_char,
        key_len: usize,
        val_len: usize,
        prval: *mut c_int,
    );
    fn rados_write_op_operate(
        op: WriteOpT,
        io: IoCtxT,
        oid: *const c_char,
        mtime: *mut libc::time_t,
        flags: c_int,
    ) -> c_int;

    fn rados_create_read_op() -> ReadOpT;
    fn rados_release_read_op(op: ReadOpT);
    fn rados_read_op_omap_get_vals2(
        op: ReadOpT,
        start_after: *const c_char,
        filter_prefix: *const c_char,
        max_return: u64,
        iter: *mut OmapIterT,
        pmore: *mut u8,
        prval: *mut c_int,
    );
    fn rados_read_op_omap_get_vals_by_keys2(
        op: ReadOpT,
        keys: *const *const c_char,
        num_keys: usize,
        key_lens: *const usize,
        iter: *mut OmapIterT,
        prval: *mut c_int,
    );
    fn rados_read_op_operate(
        op: ReadOpT,
        io: IoCtxT,
        oid: *const c_char,
        flags: c_int,
    ) -> c_int;
    fn rados_omap_get_next2(
        iter: OmapIterT,
        key: *mut *mut c_char,
        val: *mut *mut c_char,
        key_len: *mut usize,
        val_len: *mut usize,
    ) -> c_int;
    fn rados_omap_get_end(iter: OmapIterT);
}

ceph_api! {
    RbdApi via rbd;
    fn rbd_image_options_create(opts: *mut ImageOptionsT);
    fn rbd_image_options_destroy(opts: ImageOptionsT);
    fn rbd_image_options_set_string(
        opts: ImageOptionsT,
        optname: c_int,
        optval: *const c_char,
    ) -> c_int;
    fn rbd_image_options_set_uint64(opts: ImageOptionsT, optname: c_int, optval: u64) -> c_int;

    fn rbd_create4(io: IoCtxT, name: *const c_char, size: u64, opts: ImageOptionsT) -> c_int;
    fn rbd_clone3(
        p_io: IoCtxT,
        p_name: *const c_char,
        p_snapname: *const c_char,
        c_io: IoCtxT,
        c_name: *const c_char,
        c_opts: ImageOptionsT,
    ) -> c_int;
    fn rbd_remove(io: IoCtxT, name: *const c_char) -> c_int;
    fn rbd_trash_move(io: IoCtxT, name: *const c_char, delay: u64) -> c_int;
    fn rbd_trash_list(
        io: IoCtxT,
        entries: *mut TrashImageInfoT,
        num_entries: *mut usize,
    ) -> c_int;
    fn rbd_trash_list_cleanup(entries: *mut TrashImageInfoT, num_entries: usize);
    fn rbd_trash_remove(io: IoCtxT, id: *const c_char, force: bool) -> c_int;
    fn rbd_trash_restore(io: IoCtxT, id: *const c_char, name: *const c_char) -> c_int;
    fn rbd_list2(io: IoCtxT, images: *mut ImageSpecT, max_images: *mut usize) -> c_int;
    fn rbd_image_spec_list_cleanup(images: *mut ImageSpecT, num_images: usize);

    fn rbd_open(
        io: IoCtxT,
        name: *const c_char,
        image: *mut ImageT,
        snap_name: *const c_char,
    ) -> c_int;
    fn rbd_open_read_only(
        io: IoCtxT,
        name: *const c_char,
        image: *mut ImageT,
        snap_name: *const c_char,
    ) -> c_int;
    fn rbd_close(image: ImageT) -> c_int;
    fn rbd_get_size(image: ImageT, size: *mut u64) -> c_int;
    fn rbd_resize(image: ImageT, size: u64) -> c_int;
    fn rbd_metadata_set(image: ImageT, key: *const c_char, value: *const c_char) -> c_int;
    fn rbd_flatten(image: ImageT) -> c_int;
    fn rbd_flatten_with_progress(image: ImageT, cb: ProgressFn, cbdata: *mut c_void) -> c_int;
    fn rbd_snap_create(image: ImageT, snapname: *const c_char) -> c_int;
    fn rbd_snap_remove(image: ImageT, snapname: *const c_char) -> c_int;
    fn rbd_snap_exists(image: ImageT, snapname: *const c_char, exists: *mut bool) -> c_int;
    fn rbd_snap_list(image: ImageT, snaps: *mut SnapInfoT, max_snaps: *mut c_int) -> c_int;
    fn rbd_snap_list_end(snaps: *mut SnapInfoT);
    fn rbd_get_parent(
        image: ImageT,
        parent_image: *mut LinkedImageSpecT,
        parent_snap: *mut SnapSpecT,
    ) -> c_int;
    fn rbd_linked_image_spec_cleanup(image: *mut LinkedImageSpecT);
    fn rbd_snap_spec_cleanup(snap: *mut SnapSpecT);
    fn rbd_watchers_list(
        image: ImageT,
        watchers: *mut ImageWatcherT,
        max_watchers: *mut usize,
    ) -> c_int;
    fn rbd_watchers_list_cleanup(watchers: *mut ImageWatcherT, num_watchers: usize);

    // Groups (librbd.h "RBD groups support functions"; all in Pacific 16.2).
    fn rbd_group_create(io: IoCtxT, name: *const c_char) -> c_int;
    fn rbd_group_remove(io: IoCtxT, name: *const c_char) -> c_int;
    fn rbd_group_image_add(
        group_io: IoCtxT,
        group_name: *const c_char,
        image_io: IoCtxT,
        image_name: *const c_char,
    ) -> c_int;
    fn rbd_group_image_remove(
        group_io: IoCtxT,
        group_name: *const c_char,
        image_io: IoCtxT,
        image_name: *const c_char,
    ) -> c_int;
    fn rbd_group_snap_create(
        group_io: IoCtxT,
        group_name: *const c_char,
        snap_name: *const c_char,
    ) -> c_int;
    fn rbd_group_snap_remove(
        group_io: IoCtxT,
        group_name: *const c_char,
        snap_name: *const c_char,
    ) -> c_int;
    fn rbd_snap_get_namespace_type(image: ImageT, snap_id: u64, ns_type: *mut c_int) -> c_int;
    fn rbd_snap_get_group_namespace(
        image: ImageT,
        snap_id: u64,
        group_snap: *mut SnapGroupNamespaceT,
        group_snap_size: usize,
    ) -> c_int;
    fn rbd_snap_group_namespace_cleanup(
        group_snap: *mut SnapGroupNamespaceT,
        group_snap_size: usize,
    ) -> c_int;
    fn rbd_snap_set_by_id(image: ImageT, snap_id: u64) -> c_int;
    fn rbd_metadata_get(
        image: ImageT,
        key: *const c_char,
        value: *mut c_char,
        val_len: *mut usize,
    ) -> c_int;
    fn rbd_copy3(
        src: ImageT,
        dest_io: IoCtxT,
        dest_name: *const c_char,
        dest_opts: ImageOptionsT,
    ) -> c_int;
}
