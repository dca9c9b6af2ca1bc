/* micforge's own minimal CMSIS-Core compiler header, for GCC on Cortex-M.
 *
 * Takes: CMSIS-DSP's arm_math_types.h, which includes "cmsis_compiler.h" on every
 * Cortex-M build (anything but __GNUC_PYTHON__ / MSVC / Apple host builds).
 * Produces: the compiler-attribute macros and the intrinsics (__CLZ, __SSAT, __USAT,
 * __ROR, and with the DSP extension __SMLAD, __QADD16, __PKHBT, ...) that CMSIS-DSP's
 * headers and the sources in generator/cmsis.py (SOURCES) use; nothing for the
 * NVIC, SysTick or any other core peripheral.
 *
 * Written for micforge from the Arm C Language Extensions (GCC's <arm_acle.h>, whose
 * intrinsics compile to exactly the named instruction) and the Armv7-M / Armv6-M
 * Architecture Reference Manuals where ACLE has no intrinsic. It is not a copy of
 * CMSIS's cmsis_gcc.h. Firmware that has its SDK's CMSIS-Core uses that instead;
 * this header is what the QEMU parity tests use when CMSIS_CORE_PATH is not set.
 *
 * The DSP intrinsics are defined only when __ARM_FEATURE_DSP is 1, the same test
 * arm_math_types.h makes for ARM_MATH_DSP: a source compiled with -U__ARM_FEATURE_DSP
 * (cmsis.PORTABLE_FLAGS) gets CMSIS-DSP's own C models of them from dsp/none.h instead,
 * and the two never meet in one translation unit.
 */
#ifndef MF_CMSIS_COMPILER_H_
#define MF_CMSIS_COMPILER_H_

#if !defined(__GNUC__) || defined(__clang__) || !defined(__arm__)
#error "micforge's cmsis_compiler.h is for arm-none-eabi-gcc; set CMSIS_CORE_PATH to CMSIS-Core's Include/ for other compilers"
#endif

#include <stdint.h>
#include <arm_acle.h>

/* ---- Compiler attributes (GCC spelling) ---- */
#ifndef __ASM
#define __ASM __asm
#endif
#ifndef __INLINE
#define __INLINE inline
#endif
#ifndef __STATIC_INLINE
#define __STATIC_INLINE static inline
#endif
#ifndef __STATIC_FORCEINLINE
#define __STATIC_FORCEINLINE __attribute__((always_inline)) static inline
#endif
#ifndef __NO_RETURN
#define __NO_RETURN __attribute__((__noreturn__))
#endif
#ifndef __USED
#define __USED __attribute__((used))
#endif
#ifndef __WEAK
#define __WEAK __attribute__((weak))
#endif
#ifndef __PACKED
#define __PACKED __attribute__((packed, aligned(1)))
#endif
#ifndef __PACKED_STRUCT
#define __PACKED_STRUCT struct __attribute__((packed, aligned(1)))
#endif
#ifndef __PACKED_UNION
#define __PACKED_UNION union __attribute__((packed, aligned(1)))
#endif
#ifndef __ALIGNED
#define __ALIGNED(x) __attribute__((aligned(x)))
#endif
#ifndef __RESTRICT
#define __RESTRICT __restrict
#endif
#ifndef __COMPILER_BARRIER
#define __COMPILER_BARRIER() __ASM volatile("" ::: "memory")
#endif

/* ---- Core intrinsics, every Cortex-M ---- */

/* CLZ: leading zero bits; 32 for 0 (the instruction's result, and defined here on
 * Armv6-M too, where there is no CLZ and __builtin_clz(0) would be undefined). */
__STATIC_FORCEINLINE uint8_t __CLZ(uint32_t value)
{
    return value == 0U ? 32U : (uint8_t)__builtin_clz(value);
}

/* ROR: rotate right by op2 mod 32. */
__STATIC_FORCEINLINE uint32_t __ROR(uint32_t op1, uint32_t op2)
{
    op2 &= 31U;
    return op2 == 0U ? op1 : (op1 >> op2) | (op1 << (32U - op2));
}

#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
/* SSAT / USAT: the ACLE intrinsics take the bit position as a constant (1..32 / 0..31),
 * as the instructions encode it. */
#define __SSAT(value, sat) __ssat((value), (sat))
#define __USAT(value, sat) __usat((value), (sat))
#else
/* Armv6-M has no SSAT/USAT: the same saturation, in C. sat outside the instruction's
 * range leaves the value unchanged. */
__STATIC_FORCEINLINE int32_t __SSAT(int32_t value, uint32_t sat)
{
    if (sat >= 1U && sat <= 32U) {
        const int32_t hi = (int32_t)((1U << (sat - 1U)) - 1U);
        const int32_t lo = -hi - 1;
        return value > hi ? hi : (value < lo ? lo : value);
    }
    return value;
}

__STATIC_FORCEINLINE uint32_t __USAT(int32_t value, uint32_t sat)
{
    if (sat <= 31U) {
        const uint32_t hi = (1U << sat) - 1U;
        return value < 0 ? 0U : ((uint32_t)value > hi ? hi : (uint32_t)value);
    }
    return (uint32_t)value;
}
#endif

/* ---- DSP extension (Armv7E-M, Armv8-M Mainline with DSP): one instruction each ---- */
#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)

#if !defined(__ARM_FEATURE_SIMD32) || !__ARM_FEATURE_SIMD32
#error "__ARM_FEATURE_DSP without __ARM_FEATURE_SIMD32: <arm_acle.h> lacks the SIMD intrinsics"
#endif

/* Saturating and halving 16x2 lane arithmetic. ASX: top = a.hi + b.lo, bottom = a.lo - b.hi;
 * SAX: top = a.hi - b.lo, bottom = a.lo + b.hi. */
__STATIC_FORCEINLINE uint32_t __QADD16(uint32_t a, uint32_t b)
{ return (uint32_t)__qadd16((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __QSUB16(uint32_t a, uint32_t b)
{ return (uint32_t)__qsub16((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SHADD16(uint32_t a, uint32_t b)
{ return (uint32_t)__shadd16((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SHSUB16(uint32_t a, uint32_t b)
{ return (uint32_t)__shsub16((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __QASX(uint32_t a, uint32_t b)
{ return (uint32_t)__qasx((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __QSAX(uint32_t a, uint32_t b)
{ return (uint32_t)__qsax((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SHASX(uint32_t a, uint32_t b)
{ return (uint32_t)__shasx((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SHSAX(uint32_t a, uint32_t b)
{ return (uint32_t)__shsax((int16x2_t)a, (int16x2_t)b); }

/* Saturating 8x4 lane arithmetic. */
__STATIC_FORCEINLINE uint32_t __QADD8(uint32_t a, uint32_t b)
{ return (uint32_t)__qadd8((int8x4_t)a, (int8x4_t)b); }
__STATIC_FORCEINLINE uint32_t __QSUB8(uint32_t a, uint32_t b)
{ return (uint32_t)__qsub8((int8x4_t)a, (int8x4_t)b); }

/* Saturating 32-bit add and subtract. */
__STATIC_FORCEINLINE int32_t __QADD(int32_t a, int32_t b) { return __qadd(a, b); }
__STATIC_FORCEINLINE int32_t __QSUB(int32_t a, int32_t b) { return __qsub(a, b); }

/* Dual 16x16 multiplies: SMUAD = a.lo*b.lo + a.hi*b.hi, SMUSD = a.lo*b.lo - a.hi*b.hi,
 * the X forms swap b's halves; SMLAD/SMLSD add an accumulator (setting Q on overflow,
 * never saturating); SMLALD into 64 bits. */
__STATIC_FORCEINLINE uint32_t __SMUAD(uint32_t a, uint32_t b)
{ return (uint32_t)__smuad((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SMUADX(uint32_t a, uint32_t b)
{ return (uint32_t)__smuadx((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SMUSD(uint32_t a, uint32_t b)
{ return (uint32_t)__smusd((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SMUSDX(uint32_t a, uint32_t b)
{ return (uint32_t)__smusdx((int16x2_t)a, (int16x2_t)b); }
__STATIC_FORCEINLINE uint32_t __SMLAD(uint32_t a, uint32_t b, uint32_t acc)
{ return (uint32_t)__smlad((int16x2_t)a, (int16x2_t)b, (int32_t)acc); }
__STATIC_FORCEINLINE uint32_t __SMLADX(uint32_t a, uint32_t b, uint32_t acc)
{ return (uint32_t)__smladx((int16x2_t)a, (int16x2_t)b, (int32_t)acc); }
__STATIC_FORCEINLINE uint32_t __SMLSD(uint32_t a, uint32_t b, uint32_t acc)
{ return (uint32_t)__smlsd((int16x2_t)a, (int16x2_t)b, (int32_t)acc); }
__STATIC_FORCEINLINE uint32_t __SMLSDX(uint32_t a, uint32_t b, uint32_t acc)
{ return (uint32_t)__smlsdx((int16x2_t)a, (int16x2_t)b, (int32_t)acc); }
__STATIC_FORCEINLINE uint64_t __SMLALD(uint32_t a, uint32_t b, uint64_t acc)
{ return (uint64_t)__smlald((int16x2_t)a, (int16x2_t)b, (int64_t)acc); }
__STATIC_FORCEINLINE uint64_t __SMLALDX(uint32_t a, uint32_t b, uint64_t acc)
{ return (uint64_t)__smlaldx((int16x2_t)a, (int16x2_t)b, (int64_t)acc); }

/* SXTB16: bytes 0 and 2 sign-extended into the two halfwords. */
__STATIC_FORCEINLINE uint32_t __SXTB16(uint32_t a)
{ return (uint32_t)__sxtb16((int8x4_t)a); }

/* SMMLA: bits 63:32 of (acc << 32) + a * b, i.e. acc plus the top word of the 64-bit
 * product modulo 2^32 (the product's low word cannot carry into bits 63:32). ACLE has no
 * intrinsic for it; GCC emits SMMLA for this form itself. */
__STATIC_FORCEINLINE int32_t __SMMLA(int32_t a, int32_t b, int32_t acc)
{ return (int32_t)((uint32_t)acc + (uint32_t)(((int64_t)a * b) >> 32)); }

/* PKHBT: bottom half of a, top half of (b << shift); PKHTB: top half of a, bottom half of
 * (b >> shift), arithmetic. Shift/mask forms (shift a constant 0..31), which GCC combines
 * into the instruction. */
#define __PKHBT(a, b, shift) ((uint32_t)((((uint32_t)(a)) & 0x0000FFFFUL) | \
                                         (((uint32_t)(b) << (shift)) & 0xFFFF0000UL)))
#define __PKHTB(a, b, shift) ((uint32_t)((((uint32_t)(a)) & 0xFFFF0000UL) | \
                                         ((uint32_t)((int32_t)(b) >> (shift)) & 0x0000FFFFUL)))

#endif /* __ARM_FEATURE_DSP */

#endif /* MF_CMSIS_COMPILER_H_ */
