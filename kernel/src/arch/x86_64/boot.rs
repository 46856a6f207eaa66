//! PVH entry: QEMU jumps to `pvh_start` in 32-bit protected mode with paging
//! off and `%ebx` holding the physical address of the `hvm_start_info`.
//!
//! The code here builds minimal boot page tables (identity map of the low
//! 4 GiB for the switch itself and the AP trampoline, plus the kernel's
//! high mapping at -2 GiB), enters long mode and jumps to `kernel_main` on
//! the BSP's stack. The real page tables are built in Rust (`mm::paging`).

use core::arch::global_asm;

/// Virtual base of the kernel image: physical `p` is linked at `KERNEL_VMA + p`.
pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;

extern "C" {
    /// Physical address of the boot PML4 (identity low 4 GiB + kernel high).
    /// APs use it in the trampoline before switching to the real tables.
    pub static boot_pml4: u8;
}

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 8                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start
    .balign 4

    .section .boot.bss, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:       .skip 4096
boot_pdpt_low:   .skip 4096
boot_pdpt_high:  .skip 4096
boot_pd:         .skip 4096 * 4
boot_stack32:    .skip 256
boot_stack32_top:

    .section .bss
    .balign 16
bsp_stack:       .skip 65536
bsp_stack_top:

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
    .balign 4
boot_info_paddr: .long 0

    .section .boot.text, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, boot_info_paddr
    mov $boot_stack32_top, %esp

    /* Zero the boot tables (28 KiB): the loader need not zero NOLOAD data. */
    mov $boot_pml4, %edi
    xor %eax, %eax
    mov $(7 * 4096 / 4), %ecx
    rep stosl

    /* PML4[0] and [256] -> low PDPT, PML4[511] -> high PDPT. */
    mov $boot_pdpt_low, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 256 * 8   /* direct map alias at PHYS_OFFSET */
    mov $boot_pdpt_high, %eax
    or $3, %eax
    mov %eax, boot_pml4 + 511 * 8

    /* Low PDPT[0..4] -> the four PDs: identity 0..4 GiB. */
    mov $boot_pd, %eax
    or $3, %eax
    mov $boot_pdpt_low, %edi
    mov $4, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b

    /* High PDPT[510] -> PD 0 (phys 0..1 GiB at -2 GiB), [511] -> PD 1. */
    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt_high + 510 * 8
    add $4096, %eax
    mov %eax, boot_pdpt_high + 511 * 8

    /* 2048 PD entries of 2 MiB pages: present | writable | huge. */
    mov $boot_pd, %edi
    mov $0x83, %eax
    xor %edx, %edx
    mov $2048, %ecx
2:  mov %eax, (%edi)
    mov %edx, 4(%edi)
    add $0x200000, %eax
    adc $0, %edx
    add $8, %edi
    loop 2b

    /* PAE on, CR3, EFER.LME|NXE, paging + write-protect on. */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010000, %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $boot_long_mode

    .code64
boot_long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    movabs $bsp_stack_top, %rsp
    mov boot_info_paddr, %edi
    movabs $kernel_main, %rax
    call *%rax
3:  cli
    hlt
    jmp 3b
"#,
    options(att_syntax)
);
