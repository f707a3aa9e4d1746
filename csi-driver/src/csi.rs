//! The CSI v1.12.0 wire types and service traits, generated at build time from
//! `proto/csi.proto` (see build.rs). Nothing hand-written lives here except the wire tests.

#![allow(clippy::all, missing_docs, rustdoc::all)]

tonic::include_proto!("csi.v1");

#[cfg(test)]
mod wire_tests {
    //! Pin a few wire facts by raw bytes: a renumbered field would silently break kubelet
    //! and the sidecars, so these tests decode hand-made protobuf bytes.
    use prost::Message;

    use super::*;

    /// Encode a length-delimited field (wire type 2) by hand.
    fn ld(field: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((field << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn create_volume_request_name_is_1_and_secrets_is_5() {
        // field 1 = "pvc-1"; field 5 = map entry {key(1)="userID", value(2)="admin"}
        let mut bytes = ld(1, b"pvc-1");
        let entry = [ld(1, b"userID"), ld(2, b"admin")].concat();
        bytes.extend(ld(5, &entry));
        let req = CreateVolumeRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.name, "pvc-1");
        assert_eq!(req.secrets.get("userID").map(String::as_str), Some("admin"));
    }

    #[test]
    fn capacity_range_is_varints_1_and_2() {
        // required_bytes (1) = 5, limit_bytes (2) = 7
        let bytes = [0x08, 5, 0x10, 7];
        let r = CapacityRange::decode(&bytes[..]).unwrap();
        assert_eq!((r.required_bytes, r.limit_bytes), (5, 7));
    }

    #[test]
    fn volume_id_field_numbers() {
        let v = Volume {
            capacity_bytes: 1,
            volume_id: "v".into(),
            ..Default::default()
        };
        // capacity_bytes = 1 (varint), volume_id = 2
        assert_eq!(v.encode_to_vec(), vec![0x08, 1, 0x12, 1, b'v']);
        let stage = NodeStageVolumeRequest {
            volume_id: "a".into(),
            staging_target_path: "/s".into(),
            ..Default::default()
        };
        // volume_id = 1, publish_context = 2, staging_target_path = 3
        assert_eq!(stage.encode_to_vec(), [ld(1, b"a"), ld(3, b"/s")].concat());
    }

    #[test]
    fn access_mode_enum_values() {
        use volume_capability::access_mode::Mode;
        assert_eq!(Mode::SingleNodeWriter as i32, 1);
        assert_eq!(Mode::MultiNodeMultiWriter as i32, 5);
        assert_eq!(Mode::SingleNodeSingleWriter as i32, 6);
        assert_eq!(Mode::SingleNodeMultiWriter as i32, 7);
    }
}
