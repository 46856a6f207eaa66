//! Environments: an address space, per-core dispatch pages and upcall
//! stacks, registered upcalls, a wakeup predicate, owned frames, and the
//! accounting the kernel exports. Ids carry a generation so a stale id
//! never names a newer environment.
#![deny(unsafe_code)]

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use abi::shared::{va, Dispatch, EnvAccount, Inbox, UpcallTable, UserContext, MAX_ENVS};
use abi::syscall::{Error, NO_ENV};
use kernel::elf;
use kernel::launch::DEFAULT_FRAME_QUOTA;
use spin::Mutex;

use crate::arch::mm::{self, FrameRef, Zeroable};
use crate::arch::smp;
use crate::aspace::AddressSpace;
use crate::dispatch_page::DispatchPage;
use crate::exported;

/// Lifecycle of an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Life {
    Alive = 0,
    /// Being torn down: cores drop it at their next kernel entry.
    Dying = 1,
}

/// Memory an environment owns.
struct Memory {
    aspace: AddressSpace,
    /// Frames the kernel installed at spawn (image, arguments, inbox,
    /// dispatch pages, upcall stacks): mapped where the kernel put them for
    /// the environment's whole life and freed only when it is reaped. The
    /// environment may neither free nor map them: the kernel keeps writing
    /// the dispatch pages and the inbox through their physical addresses.
    installed: BTreeSet<u64>,
    /// Frames from `frame_alloc` (counted against the quota), each with
    /// how many of the environment's pages map it: one is freed only at
    /// zero, or it would go back to the allocator while still reachable.
    allocated: BTreeMap<u64, u32>,
    /// Page tables built for its own mappings (`map`): charged to it, as
    /// one frame mapped at every 2 MiB would otherwise take all of RAM in
    /// tables. Freed with the address space.
    page_tables: usize,
    /// Frames its descendants charged (their `frame_alloc` frames and
    /// page tables): a family lives within its root's quota.
    descendants: usize,
    frame_quota: usize,
}

impl Memory {
    fn empty() -> Self {
        Memory {
            aspace: AddressSpace { pml4: 0 },
            installed: BTreeSet::new(),
            allocated: BTreeMap::new(),
            page_tables: 0,
            descendants: 0,
            frame_quota: 0,
        }
    }

    /// Frames counted against the quota.
    fn charged(&self) -> usize {
        self.allocated.len() + self.page_tables + self.descendants
    }

    /// Every frame it owns.
    fn owned(&self) -> impl Iterator<Item = u64> + '_ {
        self.installed
            .iter()
            .copied()
            .chain(self.allocated.keys().copied())
    }
}

pub struct Env {
    pub id: u32,
    name: [u8; 32],
    name_len: usize,
    /// Root of the page tables (constant for the environment's life).
    pub pml4: u64,
    life: AtomicU32,
    /// Asleep until its predicate holds.
    pub asleep: AtomicBool,
    pub upcalls: Mutex<UpcallTable>,
    /// Entry used as the prologue until `set_upcalls`.
    pub entry: u64,
    pub predicate: Mutex<Option<predicate::Verified>>,
    memory: Mutex<Memory>,
    /// The dispatch page of each core.
    dispatch: Vec<FrameRef<Dispatch>>,
    /// Its console inbox (read-only to it).
    inbox: FrameRef<Inbox>,
    /// Slots this environment may hold across all cores.
    pub slot_quota: slices::Quota,
    /// Cores that gave it its `Start` upcall (bitmap).
    started: [AtomicU64; 2],
    /// Cores where a repossession is not yet told (bitmap).
    repossessed_untold: [AtomicU64; 2],
    /// Per core: the context a repossession took while it was disabled (in
    /// an upcall or a critical section), resumed directly at its next turn.
    /// Kept here, not in the dispatch page's preempted area, which may still
    /// hold the context the interrupted upcall was about to resume: under
    /// this machine's PVM a prologue was repossessed at its first
    /// instruction, overwrote the worker context it had been told to resume,
    /// and the libOS found nothing to resume.
    disabled_context: Vec<Mutex<Option<DisabledContext>>>,
    /// Cores running it right now.
    pub running_on: AtomicU32,
    /// Set once a dying environment's slots are freed on every core: only
    /// then may it be reaped (found by the soak: a core that let go first
    /// reaped it while another still freed its slots).
    pub slots_released: AtomicBool,
    /// Who created it (may kill it; it dies with it), or NO_ENV.
    pub parent: u32,
    /// The share of its parent's quotas it was given, returned to the
    /// parent when it is reaped.
    lent: Lent,
    /// Why it died, for the log.
    pub exit_reason: Mutex<Option<ExitReason>>,
}

/// A context taken while the environment was disabled, with its disabled
/// flag as it was then: 0 when it was caught in its resume range after the
/// routine had cleared the flag (it is resumed with the flag it had, or
/// the thread it was entering would run disabled for ever).
pub struct DisabledContext {
    pub ctx: UserContext,
    pub flag: u32,
}

/// How an environment ended.
#[derive(Clone, Copy, Debug)]
pub enum ExitReason {
    Exited(u64),
    Killed(&'static str),
}

fn bit(map: &[AtomicU64; 2], core: usize) -> (&AtomicU64, u64) {
    (&map[core / 64], 1 << (core % 64))
}

impl Env {
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }

    pub fn alive(&self) -> bool {
        self.life.load(Ordering::Acquire) == Life::Alive as u32
    }

    /// This environment's dispatch page for `core`, as the kernel may
    /// touch it: the environment writes it concurrently (see
    /// [`DispatchPage`]).
    pub fn dispatch(&self, core: usize) -> DispatchPage<'_> {
        // (A frame the kernel installed for this environment: `frame_free`
        // refuses it, and it is freed only when the environment is reaped.)
        DispatchPage::of(&self.dispatch[core])
    }

    /// Takes the "first time on this core" mark.
    pub fn take_start(&self, core: usize) -> bool {
        let (w, b) = bit(&self.started, core);
        w.fetch_or(b, Ordering::AcqRel) & b == 0
    }

    pub fn set_repossessed(&self, core: usize) {
        let (w, b) = bit(&self.repossessed_untold, core);
        w.fetch_or(b, Ordering::AcqRel);
    }

    /// Whether `rip` is in its registered resume range (where its libOS
    /// restores a context in user mode and counts as disabled).
    pub fn in_resume_range(&self, rip: u64) -> bool {
        let t = self.upcalls.lock();
        (t.resume_start..t.resume_end).contains(&rip)
    }

    /// Keeps the context taken from it on `core` while it was disabled.
    pub fn keep_disabled_context(&self, core: usize, ctx: DisabledContext) {
        *self.disabled_context[core].lock() = Some(ctx);
    }

    /// The context taken on `core` while it was disabled, if any (once).
    pub fn take_disabled_context(&self, core: usize) -> Option<DisabledContext> {
        let mut kept = self.disabled_context[core].lock();
        // Checked first: `take` alone moves the whole slot (a context and
        // its 512-byte FPU image) out even when it is empty, at every
        // prologue.
        if kept.is_none() {
            return None;
        }
        kept.take()
    }

    pub fn take_repossessed(&self, core: usize) -> bool {
        let (w, b) = bit(&self.repossessed_untold, core);
        w.fetch_and(!b, Ordering::AcqRel) & b != 0
    }

    /// Accounting exported for this environment.
    /// Posts a console message to the environment's inbox (text cut to
    /// `INBOX_MESSAGE` bytes); returns its sequence number (the count of
    /// messages before it), by which the environment names it when it
    /// reports the outcome. Only the console (core 0's monitor) posts, so
    /// there is one writer.
    pub fn post(&self, text: &str) -> u64 {
        exported::post(&self.inbox, text)
    }

    pub fn account(&self) -> &'static EnvAccount {
        exported::account(slot_of(self.id))
    }

    /// With the address space locked.
    pub fn with_aspace<R>(&self, f: impl FnOnce(&AddressSpace) -> R) -> R {
        f(&self.memory.lock().aspace)
    }

    /// `frame_alloc`: a named or any frame, counted against the quota.
    pub fn frame_alloc(&self, pfn: Option<u64>) -> Result<u64, Error> {
        let mut m = self.memory.lock();
        if m.charged() >= m.frame_quota {
            return Err(Error::QuotaExceeded);
        }
        self.charge_ancestors(1)?;
        let pa = match pfn {
            Some(pfn) => mm::alloc_named_frame(pfn),
            None => mm::alloc_frame(),
        }
        .map_err(|e| {
            self.uncharge_ancestors(1);
            frame_error(e)
        })?;
        m.allocated.insert(pa, 0);
        Ok(pa / 4096)
    }

    /// `frame_free`: only a frame from `frame_alloc` that nothing maps
    /// (`Taken` while mapped; `NotPermitted` for a frame the kernel
    /// installed).
    pub fn frame_free(&self, pfn: u64) -> Result<(), Error> {
        let pa = pfn.checked_mul(4096).ok_or(Error::BadArgument)?;
        let mut m = self.memory.lock();
        if m.installed.contains(&pa) {
            return Err(Error::NotPermitted);
        }
        match m.allocated.get(&pa) {
            None => return Err(Error::NotOwner),
            Some(&mappings) if mappings > 0 => return Err(Error::Taken),
            Some(_) => {}
        }
        m.allocated.remove(&pa);
        self.uncharge_ancestors(1);
        mm::free_frame(pa).map_err(frame_error)
    }

    /// `map`: a frame from `frame_alloc` at a libOS-mappable address not
    /// in use; the frame's mapping count goes up.
    pub fn map(&self, va: u64, pfn: u64, writable: bool, executable: bool) -> Result<(), Error> {
        if !crate::aspace::mappable(va) {
            return Err(Error::BadAddress);
        }
        let pa = pfn.checked_mul(4096).ok_or(Error::BadArgument)?;
        let mut guard = self.memory.lock();
        let m = &mut *guard;
        let charged = m.charged();
        // One tree search on the way to success (each costs ~300
        // instructions; a 1,000-thread libOS maps 4,000 stack pages at
        // start): `installed` and `allocated` never share a frame (the
        // kernel's frames are taken in the allocator, so `frame_alloc`
        // cannot name them), so only a frame not allocated needs the second
        // look, to say why.
        let Some(mappings) = m.allocated.get_mut(&pa) else {
            return Err(if m.installed.contains(&pa) {
                Error::NotPermitted
            } else {
                Error::NotOwner
            });
        };
        debug_assert!(
            !m.installed.contains(&pa),
            "a frame both installed and allocated"
        );
        unmapped(&m.aspace, va)?;
        let room = m.frame_quota.saturating_sub(charged);
        let page = Page {
            va,
            pa,
            writable,
            executable,
        };
        self.map_in(&m.aspace, &mut m.page_tables, room, page, &mut 0)?;
        *mappings += 1;
        Ok(())
    }

    /// `map_fresh`: `frame_alloc` then `map` for each of `pages` pages from
    /// `va` on, under one lock (a 1,000-thread libOS maps 4,000 stack pages
    /// at start, two system calls each). Stops at the first page that
    /// fails: how many were mapped before it, or its error if none was.
    /// The frames are charged to the ancestors once for the batch (one
    /// walk of the chain, not one a page), as many as they have room for.
    pub fn map_fresh(
        &self,
        va: u64,
        pages: usize,
        writable: bool,
        executable: bool,
    ) -> Result<usize, Error> {
        let mut guard = self.memory.lock();
        // With no ancestor nothing is charged and nothing limits the batch.
        let charged_ancestors = self.charge_ancestors_up_to(pages);
        let mut paid = charged_ancestors.unwrap_or(usize::MAX);
        let mut mapped = 0;
        let mut failed = None;
        for k in 0..pages {
            let at = va.checked_add(k as u64 * 4096).ok_or(Error::BadAddress);
            let page = at.and_then(|at| {
                self.map_fresh_page(&mut guard, at, writable, executable, &mut paid)
            });
            if let Err(e) = page {
                failed = Some(e);
                break;
            }
            mapped += 1;
        }
        // What was charged and not used (nothing with no ancestor).
        if charged_ancestors.is_some() {
            self.uncharge_ancestors(paid);
        }
        match failed {
            Some(e) if mapped == 0 => Err(e),
            _ => Ok(mapped),
        }
    }

    /// One page of [`map_fresh`](Self::map_fresh): a fresh (zeroed) frame,
    /// counted against the quota as `frame_alloc`'s, mapped once at `va`.
    /// Its frame, and the page tables it needs, are paid out of `paid`
    /// (frames already charged to the ancestors) as far as it goes, so
    /// pages stop where per-page charging would have stopped them. The
    /// address is checked before a frame is taken: a page already mapped
    /// costs no frame and is refused for its address whatever the quota
    /// has left.
    fn map_fresh_page(
        &self,
        m: &mut Memory,
        va: u64,
        writable: bool,
        executable: bool,
        paid: &mut usize,
    ) -> Result<(), Error> {
        if !crate::aspace::mappable(va) {
            return Err(Error::BadAddress);
        }
        unmapped(&m.aspace, va)?;
        let charged = m.charged() + 1;
        if charged > m.frame_quota || *paid == 0 {
            return Err(Error::QuotaExceeded);
        }
        let pa = mm::alloc_frame().map_err(frame_error)?;
        *paid -= 1;
        let room = m.frame_quota - charged;
        let page = Page {
            va,
            pa,
            writable,
            executable,
        };
        if let Err(e) = self.map_in(&m.aspace, &mut m.page_tables, room, page, paid) {
            *paid += 1;
            let freed = mm::free_frame(pa);
            debug_assert!(freed.is_ok(), "a fresh frame that was never mapped");
            return Err(e);
        }
        m.allocated.insert(pa, 1);
        Ok(())
    }

    /// Maps `page` (the caller has checked nothing is mapped at its
    /// address: [`unmapped`]), building the page tables it needs within
    /// `room` (frames the quota has left); the tables built are charged
    /// (`page_tables`) even if a later level failed, to the ancestors out
    /// of `paid` (frames already charged to them) first. The frame's own
    /// bookkeeping is the caller's.
    fn map_in(
        &self,
        aspace: &AddressSpace,
        page_tables: &mut usize,
        room: usize,
        page: Page,
        paid: &mut usize,
    ) -> Result<(), Error> {
        let Page {
            va,
            pa,
            writable,
            executable,
        } = page;
        let missing = aspace.tables_missing(va);
        if missing > room {
            return Err(Error::QuotaExceeded);
        }
        let prepaid = missing.min(*paid);
        self.charge_ancestors(missing - prepaid)?;
        *paid -= prepaid;
        let mapped = aspace.map(va, pa, writable, executable);
        let built = missing - aspace.tables_missing(va);
        *page_tables += built;
        let unbuilt = missing - built;
        let back_to_paid = unbuilt.min(prepaid);
        *paid += back_to_paid;
        self.uncharge_ancestors(unbuilt - back_to_paid);
        mapped.map_err(frame_error)
    }

    /// Lends up to `slots` slots of what this environment's quota has
    /// left to a child it creates.
    fn lend(&self, slots: u32) -> Lent {
        Lent {
            slots: self.slot_quota.take_up_to(slots),
            frames: DEFAULT_FRAME_QUOTA,
        }
    }

    /// Takes back what it lent a child (reaped, or never created).
    fn take_back(&self, lent: Lent) {
        let slots_back = self.slot_quota.give_back_n(lent.slots);
        debug_assert!(slots_back, "gave back slots never lent");
    }

    /// Charges `frames` to every live ancestor (each within its own
    /// quota), or to none. Called with this environment's memory locked:
    /// memory locks are taken child before parent, never the other way.
    fn charge_ancestors(&self, frames: usize) -> Result<(), Error> {
        if frames == 0 {
            return Ok(());
        }
        let mut charged: Vec<Arc<Env>> = Vec::new();
        let mut next = get(self.parent);
        while let Some(ancestor) = next {
            {
                let mut m = ancestor.memory.lock();
                if m.charged() + frames > m.frame_quota {
                    drop(m);
                    for a in &charged {
                        let mut m = a.memory.lock();
                        m.descendants = m.descendants.saturating_sub(frames);
                    }
                    return Err(Error::QuotaExceeded);
                }
                m.descendants += frames;
            }
            next = get(ancestor.parent);
            charged.push(ancestor);
        }
        Ok(())
    }

    /// Charges every live ancestor the same number of frames, up to
    /// `frames`: as many as the fullest of them has room for, or `None`
    /// with no ancestor.
    /// One walk of the chain, and a second only when an ancestor had less
    /// room than one before it, to give back what those before it were
    /// charged above that. Called as `charge_ancestors` is.
    fn charge_ancestors_up_to(&self, frames: usize) -> Option<usize> {
        let mut next = Some(get(self.parent)?);
        let mut charged: Vec<(Arc<Env>, usize)> = Vec::new();
        let mut fits = frames;
        while let Some(ancestor) = next {
            if fits == 0 {
                break;
            }
            {
                let mut m = ancestor.memory.lock();
                fits = fits.min(m.frame_quota.saturating_sub(m.charged()));
                m.descendants += fits;
            }
            next = get(ancestor.parent);
            charged.push((ancestor, fits));
        }
        for (ancestor, took) in &charged {
            if *took > fits {
                let mut m = ancestor.memory.lock();
                m.descendants = m.descendants.saturating_sub(took - fits);
            }
        }
        Some(fits)
    }

    /// Gives `frames` back to its live ancestors, up to the first one that
    /// is dying (whose reaping gives back all its descendants charged).
    fn uncharge_ancestors(&self, frames: usize) {
        uncharge_from(self.parent, frames);
    }

    /// `unmap`: returns the frame; other cores running this environment
    /// drop the stale translation before this returns. The frame's mapping
    /// count goes down only then: until every core has let go of the
    /// translation, freeing it would hand out memory still reachable.
    pub fn unmap(&self, va: u64) -> Result<u64, Error> {
        if !crate::aspace::mappable(va) {
            return Err(Error::BadAddress);
        }
        let pa = self
            .memory
            .lock()
            .aspace
            .unmap(va)
            .ok_or(Error::NotMapped)?;
        smp::shootdown(self.pml4, va);
        let mut m = self.memory.lock();
        let mappings = m.allocated.get_mut(&pa);
        debug_assert!(mappings.is_some(), "unmapped a frame not from frame_alloc");
        if let Some(n) = mappings {
            *n = n.saturating_sub(1);
        }
        Ok(pa / 4096)
    }
}

/// `BadAddress` if something is mapped at `va` in `aspace`.
fn unmapped(aspace: &AddressSpace, va: u64) -> Result<(), Error> {
    match aspace.translate(va, false) {
        Some(_) => Err(Error::BadAddress),
        None => Ok(()),
    }
}

/// A page to map: frame `pa` at `va`.
struct Page {
    va: u64,
    pa: u64,
    writable: bool,
    executable: bool,
}

fn frame_error(e: kernel::frames::FrameError) -> Error {
    use kernel::frames::FrameError as F;
    match e {
        F::OutOfRange => Error::BadArgument,
        F::InUse => Error::Taken,
        F::NotAllocated => Error::NotOwner,
        F::Exhausted => Error::Exhausted,
    }
}

// ---- The environment table -------------------------------------------------

static TABLE: [Mutex<Option<Arc<Env>>>; MAX_ENVS] = [const { Mutex::new(None) }; MAX_ENVS];
/// Slots claimed by a spawn in progress or a live environment: claimed
/// atomically, so two cores spawning at once never pick the same slot.
static CLAIMED: [AtomicBool; MAX_ENVS] = [const { AtomicBool::new(false) }; MAX_ENVS];
static GENERATION: AtomicU32 = AtomicU32::new(1);

/// Environment objects not yet freed: made by `spawn`, freed with their
/// last reference. Once reaped, an environment's kernel state must go too
/// (an invariant: a reference kept on a path that never returns, such as a
/// context switch, would keep it for ever).
static OBJECTS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Env {
    fn drop(&mut self) {
        OBJECTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Environment objects alive (see `OBJECTS`).
pub fn objects() -> usize {
    OBJECTS.load(Ordering::Acquire)
}

/// Environments in the table (spawned and not yet reaped).
pub fn in_table() -> usize {
    TABLE.iter().filter(|slot| slot.lock().is_some()).count()
}

/// Table slot of an id.
pub fn slot_of(id: u32) -> usize {
    (id & 0xff) as usize % MAX_ENVS
}

/// The live environment named `id`.
pub fn get(id: u32) -> Option<Arc<Env>> {
    if id == NO_ENV {
        return None;
    }
    let env = TABLE[slot_of(id)].lock().clone()?;
    (env.id == id && env.alive()).then_some(env)
}

/// Whether `id` names a live environment: [`get`] without taking a
/// reference (no count to raise and drop on a turn's end).
pub fn is_live(id: u32) -> bool {
    id != NO_ENV
        && TABLE[slot_of(id)]
            .lock()
            .as_ref()
            .is_some_and(|e| e.id == id && e.alive())
}

/// Whether `id`'s table slot has been freed (its memory returned).
pub fn reaped(id: u32) -> bool {
    TABLE[slot_of(id)]
        .lock()
        .as_ref()
        .is_none_or(|e| e.id != id)
}

/// Whether no environment is dying (killed or exited, not yet reaped).
pub fn none_dying() -> bool {
    TABLE
        .iter()
        .all(|s| s.lock().as_ref().is_none_or(|e| e.alive()))
}

/// Whether every table slot is free (all environments reaped).
pub fn all_reaped() -> bool {
    CLAIMED.iter().all(|c| !c.load(Ordering::Acquire))
}

/// Every live environment (for reports and predicates).
pub fn all() -> Vec<Arc<Env>> {
    TABLE
        .iter()
        .filter_map(|s| s.lock().clone())
        .filter(|e| e.alive())
        .collect()
}

/// Gives `frames` back to `first` and its ancestors, up to the first
/// that is not alive.
fn uncharge_from(first: u32, frames: usize) {
    if frames == 0 {
        return;
    }
    let mut next = get(first);
    while let Some(ancestor) = next {
        {
            let mut m = ancestor.memory.lock();
            m.descendants = m.descendants.saturating_sub(frames);
        }
        next = get(ancestor.parent);
    }
}

/// Slots a parent lent its child, and the frame quota it gets.
#[derive(Clone, Copy, Debug, Default)]
struct Lent {
    slots: u32,
    frames: usize,
}

/// Creates a child of `parent` from an ELF image. Its slot quota is lent
/// by the parent, capped by what the parent has left (a child could
/// otherwise be given any quota, up to u32::MAX slots); the frames it
/// takes and the page tables it builds are charged to every ancestor too.
pub fn spawn_child(
    parent: &Env,
    name: &str,
    image: &[u8],
    slot_quota: u32,
) -> Result<Arc<Env>, SpawnError> {
    let lent = parent.lend(slot_quota);
    spawn_with(name, image, parent.id, lent, &[]).inspect_err(|_| parent.take_back(lent))
}

/// Why an environment could not be created (read through `Debug` in logs).
#[derive(Debug)]
#[allow(dead_code)]
pub enum SpawnError {
    Elf(elf::ElfError),
    NoMemory,
    TableFull,
    /// More launch arguments than `ARGS_MAX` allows.
    ArgsTooLong,
}

/// Creates an environment from an ELF image.
///
/// `args` (at most `ARGS_MAX - 8` bytes, longer is an error) is mapped
/// read-only at `va::ARGS`; an empty inbox at `va::INBOX`.
pub fn spawn(
    name: &str,
    image: &[u8],
    slot_quota: u32,
    parent: u32,
    args: &[u8],
) -> Result<Arc<Env>, SpawnError> {
    spawn_with_frames(name, image, slot_quota, DEFAULT_FRAME_QUOTA, parent, args)
}

/// [`spawn`] with a frame quota of `frame_quota` (a launch plan's
/// application of many threads: see `kernel::launch`).
pub fn spawn_with_frames(
    name: &str,
    image: &[u8],
    slot_quota: u32,
    frame_quota: usize,
    parent: u32,
    args: &[u8],
) -> Result<Arc<Env>, SpawnError> {
    let quotas = Lent {
        slots: slot_quota,
        frames: frame_quota,
    };
    spawn_with(name, image, parent, quotas, args)
}

/// `spawn` with its quotas (lent by `parent`, or the kernel's own grant).
fn spawn_with(
    name: &str,
    image: &[u8],
    parent: u32,
    quotas: Lent,
    args: &[u8],
) -> Result<Arc<Env>, SpawnError> {
    if args.len() > abi::shared::ARGS_MAX - 8 {
        return Err(SpawnError::ArgsTooLong);
    }
    let program =
        elf::parse(image, va::PROGRAM_BASE..va::USER_MAP_START).map_err(SpawnError::Elf)?;
    let index = CLAIMED
        .iter()
        .position(|c| {
            c.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
        .ok_or(SpawnError::TableFull)?;
    let unclaim = || CLAIMED[index].store(false, Ordering::Release);
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    let id = (generation << 8) | index as u32;
    let Ok(aspace) = AddressSpace::new() else {
        unclaim();
        return Err(SpawnError::NoMemory);
    };
    let mut memory = Memory {
        aspace,
        frame_quota: quotas.frames,
        ..Memory::empty()
    };
    let built = build_image(&mut memory, &program, image)
        .and_then(|()| exported::map_into(&memory.aspace).map_err(|_| SpawnError::NoMemory))
        .and_then(|()| map_args(&mut memory, args))
        .and_then(|()| map_inbox(&mut memory))
        .and_then(|inbox| Ok((map_per_core(&mut memory)?, inbox)));
    let (dispatch, inbox) = match built {
        Ok(pages) => pages,
        Err(e) => {
            release(memory);
            unclaim();
            return Err(e);
        }
    };
    for (core, frame) in dispatch.iter().enumerate() {
        DispatchPage::of(frame).init(core);
    }
    let mut name_buf = [0u8; 32];
    let name_len = name.len().min(32);
    name_buf[..name_len].copy_from_slice(&name.as_bytes()[..name_len]);
    OBJECTS.fetch_add(1, Ordering::AcqRel);
    let env = Arc::new(Env {
        id,
        name: name_buf,
        name_len,
        pml4: memory.aspace.pml4,
        life: AtomicU32::new(Life::Alive as u32),
        asleep: AtomicBool::new(false),
        upcalls: Mutex::new(UpcallTable::default()),
        entry: program.entry,
        predicate: Mutex::new(None),
        memory: Mutex::new(memory),
        disabled_context: (0..dispatch.len()).map(|_| Mutex::new(None)).collect(),
        dispatch,
        inbox,
        slot_quota: slices::Quota::new(quotas.slots),
        started: [AtomicU64::new(0), AtomicU64::new(0)],
        repossessed_untold: [AtomicU64::new(0), AtomicU64::new(0)],
        running_on: AtomicU32::new(0),
        slots_released: AtomicBool::new(false),
        parent,
        lent: if parent == NO_ENV {
            Lent::default()
        } else {
            quotas
        },
        exit_reason: Mutex::new(None),
    });
    crate::ledger::reset_account(index, id, name);
    *TABLE[index].lock() = Some(env.clone());
    crate::record::emit(
        abi::record::RecordKind::Event,
        format_args!(
            "\"event\":\"spawned\",\"env\":{id},\"name\":\"{}\",\"t_ns\":{}",
            env.name(),
            crate::arch::time::now_ns()
        ),
    );
    Ok(env)
}

fn alloc_installed(m: &mut Memory) -> Result<u64, SpawnError> {
    alloc_installed_with(m, |_| {})
}

/// A fresh frame, written by `fill` first, installed for the environment.
fn alloc_installed_with(
    m: &mut Memory,
    fill: impl FnOnce(&mut [u8; 4096]),
) -> Result<u64, SpawnError> {
    let pa = mm::alloc_frame_with(fill).map_err(|_| SpawnError::NoMemory)?;
    m.installed.insert(pa);
    Ok(pa)
}

/// A fresh frame holding a `T`, installed for the environment.
fn alloc_installed_as<T: Zeroable>(m: &mut Memory) -> Result<FrameRef<T>, SpawnError> {
    let frame = mm::alloc_frame_as::<T>().map_err(|_| SpawnError::NoMemory)?;
    m.installed.insert(frame.pa());
    Ok(frame)
}

/// Copies the program's segments into fresh frames.
fn build_image(m: &mut Memory, program: &elf::Program, image: &[u8]) -> Result<(), SpawnError> {
    for seg in program.segments() {
        let start = seg.vaddr & !0xfff;
        let end = (seg.vaddr + seg.mem_size).div_ceil(0x1000) * 0x1000;
        for page in (start..end).step_by(0x1000) {
            // Bytes of the file that land in this page (the range was
            // validated by `elf::parse` to lie in `image`).
            let lo = page.max(seg.vaddr);
            let hi = (page + 0x1000).min(seg.vaddr + seg.file_size);
            let pa = alloc_installed_with(m, |frame| {
                if lo < hi {
                    let from = (seg.file_offset + (lo - seg.vaddr)) as usize;
                    let len = (hi - lo) as usize;
                    let at = (lo - page) as usize;
                    frame[at..at + len].copy_from_slice(&image[from..from + len]);
                }
            })?;
            m.aspace
                .map(page, pa, seg.writable, seg.executable)
                .map_err(|_| SpawnError::NoMemory)?;
        }
    }
    Ok(())
}

/// Maps a fresh frame, written by `fill`, read-only at `at`.
fn map_readonly_page(
    m: &mut Memory,
    at: u64,
    fill: impl FnOnce(&mut [u8; 4096]),
) -> Result<(), SpawnError> {
    let pa = alloc_installed_with(m, fill)?;
    m.aspace
        .map(at, pa, false, false)
        .map_err(|_| SpawnError::NoMemory)
}

/// Maps a fresh console inbox read-only at `va::INBOX`.
fn map_inbox(m: &mut Memory) -> Result<FrameRef<Inbox>, SpawnError> {
    let inbox = alloc_installed_as::<Inbox>(m)?;
    m.aspace
        .map(va::INBOX, inbox.pa(), false, false)
        .map_err(|_| SpawnError::NoMemory)?;
    Ok(inbox)
}

/// Copies `args` behind its length into read-only pages at `va::ARGS`.
fn map_args(m: &mut Memory, args: &[u8]) -> Result<(), SpawnError> {
    let len = args.len() as u64;
    let pages = (8 + args.len()).div_ceil(0x1000) as u64;
    for page in 0..pages {
        // The page's part of the 8-byte header followed by the text.
        let (lo, hi) = (page * 0x1000, ((page + 1) * 0x1000).min(8 + len));
        map_readonly_page(m, va::ARGS + page * 0x1000, |frame| {
            for off in lo..hi {
                frame[(off - lo) as usize] = if off < 8 {
                    len.to_le_bytes()[off as usize]
                } else {
                    args[(off - 8) as usize]
                };
            }
        })?;
    }
    Ok(())
}

/// Dispatch pages and upcall stacks for every online core.
fn map_per_core(m: &mut Memory) -> Result<Vec<FrameRef<Dispatch>>, SpawnError> {
    let mut pages = Vec::new();
    for core in 0..smp::cores() as u64 {
        let dispatch = alloc_installed_as::<Dispatch>(m)?;
        m.aspace
            .map(va::DISPATCH + core * 0x1000, dispatch.pa(), true, false)
            .map_err(|_| SpawnError::NoMemory)?;
        pages.push(dispatch);
        let top = va::UPCALL_STACKS + (core + 1) * va::UPCALL_STACK_STRIDE;
        for page in (top - va::UPCALL_STACK_SIZE..top).step_by(0x1000) {
            let pa = alloc_installed(m)?;
            m.aspace
                .map(page, pa, true, false)
                .map_err(|_| SpawnError::NoMemory)?;
        }
    }
    Ok(pages)
}

/// Frees everything `m` owns; returns how many owned frames the allocator
/// took back (all of them, unless the ownership records are wrong).
fn release(m: Memory) -> usize {
    let freed = m.owned().filter(|&pa| mm::free_frame(pa).is_ok()).count();
    m.aspace.destroy();
    freed
}

/// Marks `env` dying and records why; false if it already was. The
/// caller (`sched::kill`) then takes its slots and lets its cores go; the
/// last core to drop it frees everything (see `reap`).
pub fn mark_dying(env: &Env, reason: ExitReason) -> bool {
    if env.life.swap(Life::Dying as u32, Ordering::AcqRel) == Life::Dying as u32 {
        return false;
    }
    *env.exit_reason.lock() = Some(reason);
    let (event, detail): (&str, alloc::string::String) = match reason {
        ExitReason::Exited(code) => ("exited", alloc::format!("\"code\":{code}")),
        ExitReason::Killed(why) => ("killed", alloc::format!("\"reason\":\"{why}\"")),
    };
    crate::record::emit(
        abi::record::RecordKind::Event,
        format_args!(
            "\"event\":\"{event}\",\"env\":{},\"name\":\"{}\",\"core\":{},\"t_ns\":{},{detail}",
            env.id,
            env.name(),
            crate::arch::percpu::core_id(),
            crate::arch::time::now_ns()
        ),
    );
    if let ExitReason::Killed(why) = reason {
        log::warn!("env {} ({}) killed: {why}", env.id, env.name());
    }
    true
}

/// What reaping an environment gave back: `freed` of the `owned` frames
/// went back to the allocator (all, unless the ownership records are
/// wrong: `invariants::on_reaped` checks it).
pub struct Reaped {
    pub id: u32,
    pub owned: usize,
    pub freed: usize,
}

/// Frees a dead environment once no core runs it. Idempotent: `None`
/// unless this call reaped it.
pub fn reap(id: u32) -> Option<Reaped> {
    let mut slot = TABLE[slot_of(id)].lock();
    let env = slot.as_ref()?;
    if env.id != id
        || env.alive()
        || env.running_on.load(Ordering::SeqCst) != 0
        || !env.slots_released.load(Ordering::SeqCst)
    {
        return None;
    }
    // The slot stays locked until the memory is back in the allocator, so
    // `reaped` (which takes the lock) means "freed", not "being freed".
    let env = slot.take().expect("checked above");
    exported::retire_account(slot_of(id));
    *env.predicate.lock() = None;
    // Other references (a core between decisions) may linger briefly; the
    // memory is freed here regardless, as no core will enter it again.
    let memory = core::mem::replace(&mut *env.memory.lock(), Memory::empty());
    let owned = memory.owned().count();
    let charged = memory.charged();
    let freed = if memory.aspace.pml4 != 0 {
        release(memory)
    } else {
        owned
    };
    CLAIMED[slot_of(id)].store(false, Ordering::Release);
    drop(slot);
    // A parent still alive takes back the slots it lent, and its line the
    // frames charged to them (a dead one needs nothing back: its own
    // memory is gone or going).
    if let Some(parent) = get(env.parent) {
        parent.take_back(env.lent);
    }
    uncharge_from(env.parent, charged);
    Some(Reaped { id, owned, freed })
}
