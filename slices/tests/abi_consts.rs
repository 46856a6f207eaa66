//! The bounds here are the ones the exported ABI describes (this crate does
//! not depend on `abi`; the test does).

#[test]
fn bounds_match_the_abi() {
    assert_eq!(slices::MAX_SLOTS, abi::shared::MAX_SLOTS);
    assert_eq!(slices::NO_ENV, abi::syscall::NO_ENV);
}
