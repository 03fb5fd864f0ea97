// Prepended to every shader (see gpu::kernel::Source). Integer division has no SIMD instruction
// on CPUs, so lavapipe runs `a / b` lane by lane; this float-reciprocal division vectorises and
// is exact for quotients below 2^20 after the two corrections (every caller stays far below).
fn udiv(a: u32, b: u32) -> u32 {
    var q = u32(f32(a) / f32(b));
    if (q * b > a) { q -= 1u; }
    if (a - q * b >= b) { q += 1u; }
    return q;
}
