//! Writes the prost types of onnx.proto to the file named by the first argument.
//! Needs `protoc` (Debian: protobuf-compiler) on PATH or in $PROTOC.

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, proto, out_dir] = args.as_slice() else {
        eprintln!("usage: onnx-proto-gen ONNX_PROTO OUT_DIR");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(proto).parent().unwrap_or(std::path::Path::new("."));
    prost_build::Config::new().out_dir(out_dir).compile_protos(&[proto], &[dir])
}
