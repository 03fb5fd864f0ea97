//! ONNX tensors to and from plain vectors. Reading checks the declared dims against the data
//! actually present before allocating anything, so a hostile file cannot make us allocate more
//! than it holds.

use anyhow::{bail, ensure, Result};

use super::proto::{tensor_proto::DataLocation, tensor_proto::DataType, TensorProto};

/// The element count its dims declare (dims ≥ 0, product without overflow).
pub fn declared_len(t: &TensorProto, what: &str) -> Result<usize> {
    let mut n: usize = 1;
    for &d in &t.dims {
        ensure!(d >= 0, "{what}: negative dimension {d} in dims {:?}", t.dims);
        n = n.checked_mul(d as usize).ok_or_else(|| anyhow::anyhow!("{what}: dims {:?} overflow", t.dims))?;
    }
    Ok(n)
}

pub fn dims(t: &TensorProto) -> Vec<usize> {
    t.dims.iter().map(|&d| d.max(0) as usize).collect()
}

fn check_location(t: &TensorProto, what: &str) -> Result<()> {
    ensure!(
        t.data_location() != DataLocation::External,
        "{what}: its data is in an external file; save the model as one file (onnx.save(model, path, save_as_external_data=False))"
    );
    Ok(())
}

fn type_name(code: i32) -> String {
    DataType::try_from(code).map_or(format!("type {code}"), |t| t.as_str_name().to_lowercase())
}

/// A float tensor's values; `what` names it in errors (e.g. "initializer 'conv1.weight'").
pub fn to_f32(t: &TensorProto, what: &str) -> Result<Vec<f32>> {
    check_location(t, what)?;
    let n = declared_len(t, what)?;
    ensure!(t.data_type() == DataType::Float as i32, "{what}: is {}, only float32 weights are supported", type_name(t.data_type()));
    let raw = t.raw_data();
    if !raw.is_empty() || t.float_data.is_empty() {
        // compare before allocating: the dims may claim far more than the file holds
        ensure!(n.checked_mul(4) == Some(raw.len()), "{what}: dims {:?} declare {n} floats but the data holds {} bytes", t.dims, raw.len());
        return Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect());
    }
    ensure!(t.float_data.len() == n, "{what}: dims {:?} declare {n} floats but the data holds {}", t.dims, t.float_data.len());
    Ok(t.float_data.clone())
}

/// An integer tensor's values (int64 or int32), e.g. shapes, pads, indices.
pub fn to_i64(t: &TensorProto, what: &str) -> Result<Vec<i64>> {
    check_location(t, what)?;
    let n = declared_len(t, what)?;
    let raw = t.raw_data();
    let (width, list_len) = match DataType::try_from(t.data_type()) {
        Ok(DataType::Int64) => (8, t.int64_data.len()),
        Ok(DataType::Int32) => (4, t.int32_data.len()),
        _ => bail!("{what}: is {}, expected an int64 tensor", type_name(t.data_type())),
    };
    if raw.is_empty() && list_len > 0 {
        ensure!(list_len == n, "{what}: dims {:?} declare {n} integers but the data holds {list_len}", t.dims);
        return Ok(if width == 8 { t.int64_data.clone() } else { t.int32_data.iter().map(|&v| v as i64).collect() });
    }
    ensure!(n.checked_mul(width) == Some(raw.len()), "{what}: dims {:?} declare {n} integers but the data holds {} bytes", t.dims, raw.len());
    Ok(raw
        .chunks_exact(width)
        .map(|c| if width == 8 { i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) } else { i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64 })
        .collect())
}

/// A float initializer stored as little-endian raw bytes.
pub fn from_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An int64 initializer (shapes, pads, slice bounds, gather indices).
pub fn from_i64(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_claiming_more_than_the_data_are_refused_before_allocating() {
        let mut t = from_f32("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(to_f32(&t, "w").unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        t.dims = vec![1 << 40, 1 << 20];
        let e = to_f32(&t, "initializer 'w'").unwrap_err().to_string();
        assert!(e.contains("initializer 'w'") && e.contains("16 bytes"), "{e}");
        t.dims = vec![i64::MAX, 4];
        assert!(to_f32(&t, "w").unwrap_err().to_string().contains("overflow"));
    }

    #[test]
    fn int32_and_int64_lists_and_raw_bytes_agree() {
        let t = from_i64("s", &[3], &[0, -1, 7]);
        assert_eq!(to_i64(&t, "s").unwrap(), vec![0, -1, 7]);
        let l = TensorProto { dims: vec![2], data_type: Some(DataType::Int32 as i32), int32_data: vec![5, -2], ..Default::default() };
        assert_eq!(to_i64(&l, "l").unwrap(), vec![5, -2]);
    }
}
