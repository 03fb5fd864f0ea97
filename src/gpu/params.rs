//! `#[repr(C)]` twins of the shaders' uniform `Params` structs. Each twin names its shader file
//! and WGSL struct, so a test (tests/shaders.rs) can reflect the shader with naga and check that
//! the twin's size, field names and offsets match: a field added on one side only fails there,
//! not as silently misread parameters at run time.

/// One twin's layout, as the reflection test compares it.
#[derive(Clone, Debug)]
pub struct TwinLayout {
    /// File under `shaders/`.
    pub shader: &'static str,
    /// The WGSL struct's name.
    pub wgsl: &'static str,
    pub size: usize,
    /// (field name, byte offset), in declaration order.
    pub fields: Vec<(&'static str, usize)>,
}

/// Declares twins: `Name = "file.wgsl" :: WgslName { field: u32, … }`. Field names and order
/// follow the WGSL struct exactly, padding included. One twin can serve several shader structs
/// of the same layout: `Name = "a.wgsl" :: P, "b.wgsl" :: Q { … }`.
macro_rules! wgsl_params {
    ($($(#[$m:meta])* $name:ident = $($shader:literal :: $wgsl:ident),+ { $($f:ident : $t:ty),* $(,)? })*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
            pub struct $name { $(pub $f: $t),* }

            impl $name {
                /// One layout per shader struct this twin mirrors.
                pub fn layouts() -> Vec<$crate::gpu::params::TwinLayout> {
                    let fields = vec![$((stringify!($f), std::mem::offset_of!($name, $f))),*];
                    let size = std::mem::size_of::<$name>();
                    vec![$($crate::gpu::params::TwinLayout { shader: $shader, wgsl: stringify!($wgsl), size, fields: fields.clone() }),+]
                }
            }
        )*
    };
}
pub(crate) use wgsl_params;

/// Every twin of every launcher module, for the reflection test.
pub fn layouts() -> Vec<TwinLayout> {
    use super::*;
    [
        activation::Params::layouts(),
        admm::Params::layouts(),
        purify::Params::layouts(),
        norm::Params::layouts(),
        elementwise::Params::layouts(),
        conv::Im2colParams::layouts(),
        conv::DgradWeightsParams::layouts(),
        conv::ChannelSumParams::layouts(),
        conv::Col2imParams::layouts(),
        conv::ConvGemmParams::layouts(),
        conv::WgradParams::layouts(),
        conv::DgradParams::layouts(),
        gemm::GemmParams::layouts(),
        gemm::ReduceParams::layouts(),
        gemm::PackParams::layouts(),
        pool::MaxParams::layouts(),
        pool::AvgParams::layouts(),
        loss::XentParams::layouts(),
        loss::MetricsParams::layouts(),
        sgd::Params::layouts(),
    ]
    .concat()
}
