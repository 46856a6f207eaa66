//! Numbers into record text without `core::fmt`.
//!
//! The sampler of a 1,000-thread application writes some 13,000 numbers
//! every sample; through `write!` each cost ~300 instructions of
//! formatting machinery (argument tables, padding, a `dyn Write` per
//! piece), most of the control thread's time and so a visible part of the
//! application's. `itoa` writes one in a few dozen.

use alloc::string::String;

/// Appends `v` in decimal.
pub fn push_num(out: &mut String, v: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `values` in decimal, separated by commas.
pub fn push_list(out: &mut String, values: &[u64]) {
    for (i, &v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_num(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn numbers_read_as_format_writes_them() {
        let edges = [0, 1, 9, 10, 99, 100, 4_294_967_295, 4_294_967_296, u64::MAX];
        for v in edges {
            let mut s = String::from("x");
            push_num(&mut s, v);
            assert_eq!(s, format!("x{v}"));
        }
        let mut s = String::new();
        push_num(&mut s, -1i64);
        push_num(&mut s, u32::MAX);
        assert_eq!(s, format!("-1{}", u32::MAX));
    }

    #[test]
    fn a_list_is_comma_separated_without_ends() {
        let mut s = String::from("[");
        push_list(&mut s, &[]);
        assert_eq!(s, "[");
        push_list(&mut s, &[7]);
        assert_eq!(s, "[7");
        s.push(']');
        s.clear();
        push_list(&mut s, &[0, 12, u64::MAX, 3]);
        assert_eq!(s, format!("0,12,{},3", u64::MAX));
    }

    #[test]
    fn random_values_match_display() {
        // A fixed-seed generator: every magnitude from 1 to 20 digits.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..10_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x >> (i % 64);
            let mut s = String::new();
            push_list(&mut s, &[v, v / 3]);
            assert_eq!(s, format!("{v},{}", v / 3));
        }
    }
}
