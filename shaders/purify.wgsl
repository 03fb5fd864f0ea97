// Purification statistics (SPEC.md §4, step 1) on the GEMM view of one layer: a row-major
// [rows][cols] matrix whose groups are its rows (filter scheme, `column` = 0) or its columns
// (column scheme, `column` = 1). For every group g:
//   stats[2g]     = number of entries that are exactly zero (as f32; exact below 2^24)
//   stats[2g + 1] = L2 norm of the group (not squared)
// The host derives emptiness (zeros / group length) and the mean norm of the non-zero groups.

struct Params { rows: u32, cols: u32, column: u32, groups: u32 }

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// One thread per group: a row is `cols` consecutive entries, a column `rows` entries `cols` apart.
@compute @workgroup_size(256)
fn group_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var g = gid.x; g < p.groups; g += nwg.x * 256u) {
        var i = g * p.cols;
        var len = p.cols;
        var step = 1u;
        if (p.column != 0u) {
            i = g;
            len = p.rows;
            step = p.cols;
        }
        var zeros = 0.0;
        var s = 0.0;
        for (var t = 0u; t < len; t++) {
            let v = w[i];
            zeros += select(0.0, 1.0, v == 0.0);
            s += v * v;
            i += step;
        }
        stats[2u * g] = zeros;
        stats[2u * g + 1u] = sqrt(s);
    }
}
