//! Hostile: calls every system call with wild arguments — kernel addresses,
//! huge lengths, others' ids and slots, malformed predicates — and reports
//! what came back. Every call must fail with the expected error; the kernel
//! must survive and everyone else keep their share.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use core::sync::atomic::Ordering;

use libos::abi::shared::{UpcallTable, MAX_ENVS};
use libos::abi::syscall::{Error, MAP_FRESH_MAX_PAGES, NO_ENV};
use libos::predicate::Builder;
use libos::{report, sys, App, Epilogue};

const KERNEL: u64 = 0xffff_8000_0000_0000;
/// Where `map_fresh` is tried (mappable, unused by the libOS).
const FRESH: u64 = 0x1000_0010_0000;

fn expect(call: &str, got: Result<u64, Error>, want: Error) -> bool {
    let ok = got == Err(want);
    let got = match got {
        Ok(v) => {
            report!("\"kind\":\"badargs\",\"call\":\"{call}\",\"ok\":false,\"got\":\"ok:{v}\",\"want\":\"{}\"", want.name());
            return false;
        }
        Err(e) => e.name(),
    };
    report!(
        "\"kind\":\"badargs\",\"call\":\"{call}\",\"ok\":{ok},\"got\":\"{got}\",\"want\":\"{}\"",
        want.name()
    );
    ok
}

/// `map_fresh`: wild arguments get errors; pages it maps are fresh and
/// writable, and free as `frame_alloc`'s do; over a mapped page it maps
/// up to it.
fn map_fresh_checks() -> bool {
    let mut ok = true;
    for (call, got, want) in [
        (
            "map_fresh_no_pages",
            sys::map_fresh(FRESH, 0, 1),
            Error::BadArgument,
        ),
        (
            "map_fresh_too_many_pages",
            sys::map_fresh(FRESH, MAP_FRESH_MAX_PAGES + 1, 1),
            Error::BadArgument,
        ),
        (
            "map_fresh_bad_flags",
            sys::map_fresh(FRESH, 1, 4),
            Error::BadArgument,
        ),
        (
            "map_fresh_kernel_address",
            sys::map_fresh(KERNEL, 1, 1),
            Error::BadAddress,
        ),
        (
            "map_fresh_unaligned",
            sys::map_fresh(FRESH + 1, 1, 1),
            Error::BadAddress,
        ),
        (
            "map_fresh_wraps",
            sys::map_fresh(0xffff_ffff_ffff_f000, 2, 1),
            Error::BadAddress,
        ),
    ] {
        ok &= expect(call, got, want);
    }
    ok &= sys::map_fresh(FRESH, 2, 1) == Ok(2);
    for page in [FRESH, FRESH + 4096] {
        let word = page as *mut u64;
        // SAFETY: the page was just mapped writable, for this program alone.
        let fresh = unsafe {
            let zero = word.read_volatile() == 0;
            word.write_volatile(page);
            zero && word.read_volatile() == page
        };
        ok &= fresh;
    }
    ok &= expect(
        "map_fresh_over_mapped",
        sys::map_fresh(FRESH + 4096, 2, 1),
        Error::BadAddress,
    );
    ok &= sys::map_fresh(FRESH - 4096, 2, 1) == Ok(1);
    for page in [FRESH - 4096, FRESH, FRESH + 4096] {
        ok &= sys::unmap(page).and_then(sys::frame_free).is_ok();
    }
    ok
}

/// At the quota less two frames (`frames`: every frame `frame_alloc`
/// gave; `FRESH`'s page tables built), a four-page `map_fresh` maps two
/// and says so, is charged for those two alone (the quota is then used up
/// exactly, and nothing is mapped past them; over a page it mapped it
/// says `BadAddress`, not `QuotaExceeded`), and they free as
/// `frame_alloc`'s. With one frame left, a page whose page table is
/// missing is refused and costs nothing: the frame can still be had.
fn map_fresh_partial_at_quota(frames: &mut alloc::vec::Vec<u64>) -> bool {
    let mut ok = true;
    for _ in 0..2 {
        ok &= frames.pop().is_some_and(|pfn| sys::frame_free(pfn).is_ok());
    }
    let partial = sys::map_fresh(FRESH, 4, 1);
    if partial != Ok(2) {
        report!("\"kind\":\"badargs\",\"call\":\"map_fresh_partial_at_quota\",\"ok\":false,\"got\":\"{partial:?}\",\"want\":\"ok:2\"");
        // Its pages are not known to be there: reading them could fault.
        return false;
    }
    ok &= expect(
        "map_fresh_partial_charges_what_it_maps",
        sys::frame_alloc(None),
        Error::QuotaExceeded,
    );
    ok &= expect(
        "map_fresh_partial_maps_no_further",
        sys::unmap(FRESH + 2 * 4096),
        Error::NotMapped,
    );
    // With the quota used up, a page already mapped is refused for its
    // address (what the caller got wrong), not for the quota: the address
    // is checked before a frame is taken.
    ok &= expect(
        "map_fresh_over_mapped_at_quota",
        sys::map_fresh(FRESH, 1, 1),
        Error::BadAddress,
    );
    for page in [FRESH, FRESH + 4096] {
        // SAFETY: the page was just mapped writable, for this program alone.
        ok &= unsafe { (page as *const u64).read_volatile() } == 0;
        ok &= sys::unmap(page).and_then(sys::frame_free).is_ok();
    }
    let mut take = || match sys::frame_alloc(None) {
        Ok(pfn) => {
            frames.push(pfn);
            true
        }
        Err(_) => false,
    };
    ok &= take();
    // The next 2 MiB: its page table is not there.
    ok &= expect(
        "map_fresh_no_room_for_its_table",
        sys::map_fresh(FRESH + 0x20_0000, 1, 1),
        Error::QuotaExceeded,
    );
    ok &= take();
    ok
}

fn raw(n: u64, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: the kernel validates every argument; these calls do not
    // switch context when they fail, which is what is tested.
    Error::decode(unsafe { sys::raw(n, a) }.0)
}

// `registers_changed(number, &args)`: makes the `syscall` with the six
// arguments from `args` and a distinct value in every other register the
// ABI keeps (`abi::syscall`: all but rax, rcx, r11, and rdx where a call
// answers in it), RFLAGS with CF set; returns a bit per register that came
// back different (bits as in [`KEPT`]). Written in assembly: Rust could
// neither hold rbx and rbp nor see a changed rsp. Its scratch words are
// the program's: one core runs it.
core::arch::global_asm!(
    ".pushsection .bss.registers_changed, \"aw\"",
    ".balign 8",
    "rc_rsp: .quad 0",
    "rc_args: .quad 0",
    "rc_flags: .quad 0",
    ".popsection",
    ".pushsection .text.registers_changed, \"ax\"",
    ".global registers_changed",
    "registers_changed:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rip + rc_rsp], rsp",
    "mov [rip + rc_args], rsi",
    "mov rax, rdi",
    "mov rdi, [rsi]",
    "mov rdx, [rsi + 16]",
    "mov r10, [rsi + 24]",
    "mov r8, [rsi + 32]",
    "mov r9, [rsi + 40]",
    "mov rsi, [rsi + 8]",
    "movabs rbx, 0x5bb0000000000001",
    "movabs rbp, 0x5bb0000000000002",
    "movabs r12, 0x5bb0000000000003",
    "movabs r13, 0x5bb0000000000004",
    "movabs r14, 0x5bb0000000000005",
    "movabs r15, 0x5bb0000000000006",
    "stc",
    "pushfq",
    "pop rcx",
    "mov [rip + rc_flags], rcx",
    "syscall",
    // Flags and rsp first, before anything changes them.
    "mov rcx, rsp",
    "mov rsp, [rip + rc_rsp]",
    "pushfq",
    "pop r11",
    "xor eax, eax",
    "cmp r11, [rip + rc_flags]",
    "je 2f",
    "or eax, 1 << 0",
    "2: cmp rcx, rsp",
    "je 2f",
    "or eax, 1 << 1",
    "2: movabs r11, 0x5bb0000000000001",
    "cmp rbx, r11",
    "je 2f",
    "or eax, 1 << 2",
    "2: movabs r11, 0x5bb0000000000002",
    "cmp rbp, r11",
    "je 2f",
    "or eax, 1 << 3",
    "2: movabs r11, 0x5bb0000000000003",
    "cmp r12, r11",
    "je 2f",
    "or eax, 1 << 4",
    "2: movabs r11, 0x5bb0000000000004",
    "cmp r13, r11",
    "je 2f",
    "or eax, 1 << 5",
    "2: movabs r11, 0x5bb0000000000005",
    "cmp r14, r11",
    "je 2f",
    "or eax, 1 << 6",
    "2: movabs r11, 0x5bb0000000000006",
    "cmp r15, r11",
    "je 2f",
    "or eax, 1 << 7",
    "2: mov r11, [rip + rc_args]",
    "cmp rdi, [r11]",
    "je 2f",
    "or eax, 1 << 8",
    "2: cmp rsi, [r11 + 8]",
    "je 2f",
    "or eax, 1 << 9",
    "2: cmp rdx, [r11 + 16]",
    "je 2f",
    "or eax, 1 << 10",
    "2: cmp r10, [r11 + 24]",
    "je 2f",
    "or eax, 1 << 11",
    "2: cmp r8, [r11 + 32]",
    "je 2f",
    "or eax, 1 << 12",
    "2: cmp r9, [r11 + 40]",
    "je 2f",
    "or eax, 1 << 13",
    "2: pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".popsection",
);

extern "C" {
    fn registers_changed(number: u64, args: &[u64; 6]) -> u64;
}

/// The registers `registers_changed` checks, by bit.
const KEPT: [&str; 14] = [
    "rflags", "rsp", "rbx", "rbp", "r12", "r13", "r14", "r15", "rdi", "rsi", "rdx", "r10", "r8",
    "r9",
];
const RDX: u64 = 1 << 10;

/// Whether call `number` with `args` keeps every register the ABI keeps
/// (rdx too unless `answers_in_rdx`); reports it as a `badargs` check.
/// Arguments the call does not read get distinct values too.
fn keeps_registers(call: &str, number: u64, args: [u64; 6], answers_in_rdx: bool) -> bool {
    // SAFETY: `registers_changed` keeps the System V callee-saved registers
    // and its stack; the calls checked return to their caller (no context
    // switch: light calls, or full ones refused before they act).
    let mut changed = unsafe { registers_changed(number, &args) };
    if answers_in_rdx {
        changed &= !RDX;
    }
    let mut names = alloc::string::String::new();
    for (i, name) in KEPT.iter().enumerate() {
        if changed & (1 << i) != 0 {
            names.push_str(name);
            names.push(' ');
        }
    }
    let ok = changed == 0;
    report!(
        "\"kind\":\"badargs\",\"call\":\"keeps_registers_{call}\",\"ok\":{ok},\"got\":\"changed: {}\",\"want\":\"changed: none\"",
        if ok { "none" } else { names.trim_end() }
    );
    ok
}

/// Distinct values for the argument registers a call does not read.
const UNREAD: [u64; 6] = [
    0x5bb0_0000_0000_0011,
    0x5bb0_0000_0000_0012,
    0x5bb0_0000_0000_0013,
    0x5bb0_0000_0000_0014,
    0x5bb0_0000_0000_0015,
    0x5bb0_0000_0000_0016,
];

/// The registers the ABI keeps, through the light path (a success, an
/// error, a call answering in rdx) and the full one (refused calls, an
/// unknown number on each side of the floor).
fn every_path_keeps_registers() -> bool {
    let with = |first: &[u64]| {
        let mut a = UNREAD;
        a[..first.len()].copy_from_slice(first);
        a
    };
    let mut ok = true;
    ok &= keeps_registers("null", 0, UNREAD, false);
    ok &= keeps_registers("self_info", 2, UNREAD, true);
    ok &= keeps_registers("slice_owner", 12, with(&[0, 0]), false);
    ok &= keeps_registers("log_unmapped", 1, with(&[0x10, 8]), false);
    ok &= keeps_registers("map_kernel_address", 32, with(&[KERNEL, 1, 1]), false);
    ok &= keeps_registers("yield_bad_flags", 20, with(&[u64::MAX, 0xff]), false);
    ok &= keeps_registers("resume_bad_area", 24, with(&[7]), false);
    ok &= keeps_registers("park_in_the_past", 25, with(&[0]), false);
    ok &= keeps_registers("unknown_below_floor", 50, UNREAD, false);
    ok &= keeps_registers("unknown_above_floor", 9999, UNREAD, false);
    ok
}

fn other_env(me: u32) -> u32 {
    (0..MAX_ENVS)
        .map(|i| sys::account(i).env.load(Ordering::Acquire))
        .find(|&id| id != NO_ENV && id != me)
        .unwrap_or(NO_ENV)
}

fn worker(core: usize) -> ! {
    if core == 0 {
        let (me, _) = sys::self_info();
        let other = other_env(me);
        let mut ok = every_path_keeps_registers();
        ok &= expect(
            "log_kernel_pointer",
            raw(1, [KERNEL, 16, 0, 0, 0, 0]),
            Error::BadPointer,
        );
        ok &= expect(
            "log_huge_length",
            raw(1, [0x40_0000, u64::MAX, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        ok &= expect(
            "log_unmapped",
            raw(1, [0x10, 8, 0, 0, 0, 0]),
            Error::BadPointer,
        );
        ok &= expect(
            "report_newline",
            sys::report("\"a\":1}\n@@exo end {"),
            Error::BadArgument,
        );
        ok &= expect("no_such_syscall", raw(9999, [0; 6]), Error::BadSyscall);
        ok &= expect(
            "slice_alloc_bad_core",
            sys::slice_alloc(100_000, None).map(|s| s as u64),
            Error::BadSlot,
        );
        ok &= expect(
            "slice_alloc_bad_slot",
            sys::slice_alloc(0, Some(1 << 40)).map(|s| s as u64),
            Error::BadSlot,
        );
        ok &= expect(
            "slice_alloc_taken",
            sys::slice_alloc(0, Some(1)).map(|s| s as u64),
            Error::Taken,
        );
        ok &= expect(
            "slice_free_not_owner",
            sys::slice_free(0, 1),
            Error::NotOwner,
        );
        ok &= expect(
            "yield_to_nobody",
            sys::yield_to(Some(0x00de_ad00), false),
            Error::BadEnv,
        );
        ok &= expect(
            "yield_to_self",
            sys::yield_to(Some(me), false),
            Error::BadArgument,
        );
        ok &= expect(
            "yield_bad_flags",
            raw(20, [u64::MAX, 0xff, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        ok &= expect(
            "sleep_without_predicate",
            sys::sleep(false),
            Error::BadArgument,
        );
        // `park(deadline)`: a deadline not in the future, or beyond the
        // bound, is refused, and the caller keeps its turn (it goes on to
        // the next check).
        ok &= expect("park_in_the_past", raw(25, [0; 6]), Error::BadArgument);
        ok &= expect(
            "park_now",
            raw(25, [sys::now_ns(), 0, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        ok &= expect(
            "park_for_ever",
            raw(25, [u64::MAX, 0, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        ok &= expect(
            "park_past_the_bound",
            raw(25, [sys::now_ns() + 2_000_000_000, 0, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        ok &= expect(
            "predicate_wild_pointer",
            raw(22, [KERNEL, 16, 0, 0, 0, 0]),
            Error::BadPointer,
        );
        let reads_kernel = Builder::new(0)
            .load_u64(KERNEL)
            .imm(0)
            .eq()
            .finish()
            .unwrap();
        ok &= expect(
            "predicate_reads_kernel",
            sys::predicate_install(reads_kernel.as_bytes()).map_err(|e| e.0),
            Error::PredicateRejected,
        );
        ok &= expect(
            "predicate_garbage",
            sys::predicate_install(b"P\x01\0\0\0\0\0\0\0\0\xff").map_err(|e| e.0),
            Error::PredicateRejected,
        );
        ok &= expect(
            "resume_bad_area",
            raw(24, [7, 0, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        ok &= expect(
            "resume_nothing_saved",
            sys::resume(libos::abi::syscall::SaveArea::Fault),
            Error::NotMapped,
        );
        let table = UpcallTable {
            prologue: KERNEL,
            ..UpcallTable::default()
        };
        ok &= expect(
            "upcalls_into_kernel",
            sys::set_upcalls(&table),
            Error::BadAddress,
        );
        ok &= expect(
            "upcalls_wild_pointer",
            raw(4, [KERNEL, 0, 0, 0, 0, 0]),
            Error::BadPointer,
        );
        ok &= expect(
            "map_kernel_address",
            sys::map(KERNEL, 1, 1),
            Error::BadAddress,
        );
        ok &= expect(
            "map_unowned_frame",
            sys::map(0x1000_0000_0000, 0x100, 1),
            Error::NotOwner,
        );
        ok &= expect(
            "unmap_nothing",
            sys::unmap(0x1000_0000_0000),
            Error::NotMapped,
        );
        ok &= expect(
            "frame_free_unowned",
            sys::frame_free(0x100),
            Error::NotOwner,
        );
        ok &= expect(
            "frame_alloc_taken",
            sys::frame_alloc(Some(0x100)),
            Error::Taken,
        );
        ok &= expect(
            "frame_alloc_out_of_range",
            sys::frame_alloc(Some(1 << 50)),
            Error::BadArgument,
        );
        ok &= expect(
            "kill_not_child",
            raw(41, [u64::from(other), 0, 0, 0, 0, 0]),
            Error::NotPermitted,
        );
        ok &= expect(
            "spawn_no_such_program",
            raw(40, [100_000, 1, 0, 0, 0, 0]),
            Error::BadArgument,
        );
        // An owned frame: map it, then the same address again, then free while mapped.
        if let Ok(pfn) = sys::frame_alloc(None) {
            ok &= sys::map(0x1000_0000_0000, pfn, 1).is_ok();
            ok &= expect(
                "map_twice",
                sys::map(0x1000_0000_0000, pfn, 1),
                Error::BadAddress,
            );
            ok &= sys::unmap(0x1000_0000_0000) == Ok(pfn);
            ok &= sys::frame_free(pfn).is_ok();
        }
        ok &= map_fresh_checks();
        // Take every frame the quota allows, then every free slot on this
        // core: the kernel must say no cleanly at the limit, and take all
        // of it back.
        let mut frames = alloc::vec::Vec::new();
        let limit = loop {
            match sys::frame_alloc(None) {
                Ok(pfn) => frames.push(pfn),
                Err(e) => break e,
            }
        };
        let taken = frames.len();
        ok &= expect("frames_until_quota", Err(limit), Error::QuotaExceeded) && taken >= 1000;
        ok &= expect(
            "map_fresh_over_quota",
            sys::map_fresh(FRESH, 1, 1),
            Error::QuotaExceeded,
        );
        ok &= map_fresh_partial_at_quota(&mut frames);
        ok &= frames.drain(..).all(|pfn| sys::frame_free(pfn).is_ok());
        let mut slots = alloc::vec::Vec::new();
        let full = loop {
            match sys::slice_alloc(0, None) {
                Ok(slot) => slots.push(slot),
                Err(e) => break e,
            }
        };
        ok &= expect("slots_until_full", Err(full), Error::Exhausted);
        ok &= slots.iter().all(|&slot| sys::slice_free(0, slot).is_ok());
        report!("\"kind\":\"badargs_done\",\"all_ok\":{ok},\"other_env\":{other},\"frames_taken\":{taken},\"slots_taken\":{}", slots.len());
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "badargs",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
