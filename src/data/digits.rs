//! The 1,797 8×8 UCI handwritten digits embedded in smartcore (feature `datasets`): the default
//! data set, needing no download. Pixels are integers 0..16; there is no official test set.

use super::{Raw, RawData};

pub(crate) fn load() -> RawData {
    let set = smartcore::dataset::digits::load_dataset();
    // Embedded data, not user input: values are whole numbers 0..=16 and labels 0..=9.
    let pixels = set
        .data
        .iter()
        .map(|&v| v.round().clamp(0.0, 16.0) as u8)
        .collect();
    let labels = set
        .target
        .iter()
        .map(|&v| v.round().clamp(0.0, 9.0) as u32)
        .collect();
    RawData {
        shape: [1, 8, 8],
        scale: 1.0 / 16.0,
        class_names: (0..10).map(|d| d.to_string()).collect(),
        train: Raw { pixels, labels },
        test: None,
    }
}
