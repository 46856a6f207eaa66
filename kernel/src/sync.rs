//! Small synchronisation helpers on top of `spin`.

/// A value written once during boot, then only read. A thin wrapper over
/// `spin::Once` that names the intent and panics with a clear message when
/// read before it was set.
pub struct BootCell<T>(spin::Once<T>);

impl<T> BootCell<T> {
    pub const fn new() -> Self {
        BootCell(spin::Once::new())
    }

    /// Sets the value; panics if it was already set.
    pub fn init(&self, value: T) -> &T {
        assert!(!self.0.is_completed(), "BootCell initialised twice");
        self.0.call_once(|| value)
    }

    pub fn get(&self) -> &T {
        self.0.get().expect("BootCell read before initialisation")
    }

    pub fn try_get(&self) -> Option<&T> {
        self.0.get()
    }
}
