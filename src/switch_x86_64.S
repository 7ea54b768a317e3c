/* Register-only context switch for x86-64 (System V ABI).
 *
 * glibc's swapcontext saves and restores the signal mask with a system call on every switch
 * (~176 ns measured here); tasks do not need that, so only the callee-saved registers, the
 * stack pointer and the floating-point control words move (~9 ns). A saved context is the stack
 * pointer left below these pushes.
 */
	.text

/* void mk__ctx_switch(void **save_sp, void *load_sp) */
	.globl	mk__ctx_switch
	.hidden	mk__ctx_switch
	.type	mk__ctx_switch, @function
mk__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	mk__ctx_switch, .-mk__ctx_switch

/* void mk__ctx_save_then(void **save_sp, void (*fn)(void *), void *arg)
 * Save a context exactly as mk__ctx_switch does, then call fn(arg) on the same stack; fn must
 * not return. A later mk__ctx_switch to the saved context returns from this function. */
	.globl	mk__ctx_save_then
	.hidden	mk__ctx_save_then
	.type	mk__ctx_save_then, @function
mk__ctx_save_then:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rdx, %rdi
	call	*%rsi
	ud2
	.cfi_endproc
	.size	mk__ctx_save_then, .-mk__ctx_save_then

	.section .note.GNU-stack,"",@progbits
