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
/// follow the WGSL struct exactly, padding included.
macro_rules! wgsl_params {
    ($($(#[$m:meta])* $name:ident = $shader:literal :: $wgsl:ident { $($f:ident : $t:ty),* $(,)? })*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
            pub struct $name { $(pub $f: $t),* }

            impl $name {
                pub fn layout() -> $crate::gpu::params::TwinLayout {
                    $crate::gpu::params::TwinLayout {
                        shader: $shader,
                        wgsl: stringify!($wgsl),
                        size: std::mem::size_of::<$name>(),
                        fields: vec![$((stringify!($f), std::mem::offset_of!($name, $f))),*],
                    }
                }
            }
        )*
    };
}
pub(crate) use wgsl_params;

/// Every twin of every launcher module, for the reflection test.
pub fn layouts() -> Vec<TwinLayout> {
    use super::*;
    vec![
        activation::Params::layout(),
        admm::Params::layout(),
        purify::Params::layout(),
        norm::Params::layout(),
        elementwise::Params::layout(),
        conv::Im2colParams::layout(),
        conv::DgradWeightsParams::layout(),
        conv::ChannelSumParams::layout(),
        conv::Col2imParams::layout(),
        conv::ConvGemmParams::layout(),
        conv::WgradParams::layout(),
        conv::DgradParams::layout(),
        gemm::GemmParams::layout(),
        gemm::ReduceParams::layout(),
        gemm::PackParams::layout(),
        pool::MaxParams::layout(),
        pool::AvgParams::layout(),
        loss::XentParams::layout(),
        loss::MetricsParams::layout(),
        sgd::Params::layout(),
        tiled::TiledParams::layout(),
        tiled::TiledConvParams::layout(),
    ]
}
