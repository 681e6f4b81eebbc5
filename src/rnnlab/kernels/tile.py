r"""The register-blocked matrix-product tile, written in LLVM IR and compiled at first use.

Shape legend: M, N, K of one product ``C (M, N) = A (M, K) @ B (K, N)``; MR, NR the rows
and columns of one tile.

BLAS libraries are tuned for large products. The recurrent product of one time step is
small (16-64 rows, 64-1024 columns) and comes a hundred times per sequence with the same
right-hand matrix, so a BLAS call pays its argument checks, its packing of both operands
and its thread hand-off every step. Here ``W_h`` is packed once per sequence
(:func:`rnnlab.kernels._jit.pack_b`), the rows of ``h`` are read in place, and the product
runs tile by tile in this function, with each tile's MR x NR partial sums held in vector
registers for the whole sum over K: per ``k``, NR/W vector loads of the packed ``B``, MR
broadcasts of ``A`` and MR*NR/W fused multiply-adds.

numba cannot express that (its loops leave LLVM to choose the vectors, and LLVM did not
keep such accumulators in registers; measurements: docs/performance.md), so the tile is
emitted as
LLVM IR with explicit vector types and compiled by llvmlite, numba's own LLVM, for this
machine's CPU. The IR is generic (``llvm.fma``, ``llvm.masked.load/store``); LLVM lowers
it to AVX-512, AVX2 or NEON as the CPU allows. The function is called from the compiled
kernels through its address, like BLAS.

The tile (``tile_f32``/``tile_f64``)::

    void tile(i64 K, T* A, i64 aks, i64 ars, T* Bp, T* C, i64 ldc, i32 beta, i64 mr, i64 nc)

Writes ``C[r, j] = beta * C[r, j] + sum_k A[k * aks + r * ars] * Bp[k * NR + j]`` for
``r < mr``, ``j < nc`` and nothing outside; ``Bp`` (K, NR) is one packed panel of B, ``C``
the tile's top-left element with rows ``ldc`` apart. Rows of A read in place have
``aks = 1, ars = lda``; a block packed k-major would have ``aks = MR, ars = 1``.

The bf16 tiles (``tile_bf16``, with the AVX512_BF16 dot product ``VDPBF16PS``, compiled
only where the CPU has it; ``tile_bf16e``, the same rounding in generic instructions, for
checks on any CPU) have the same signature with ``A`` and ``Bp`` holding pairs of bf16 in
32-bit words (k = 2i in the low half, 2i + 1 in the high), ``K`` counting pairs, and float32
``C``. See docs/performance.md, "bf16 products".
"""

from __future__ import annotations

import threading


def _host_wide() -> bool:
    """Whether this CPU has 512-bit vector registers (AVX-512) that the operating system
    enables, as LLVM sees it; False where LLVM cannot tell."""
    try:
        import llvmlite.binding as llvm

        return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
    except Exception:  # noqa: BLE001 - no llvmlite, or a platform it cannot query
        return False


#: (rows MR, float32 lanes per vector) of a tile on a CPU with 32 vector registers of
#: 512 bits (AVX-512: 8 x 2 accumulators of 16 float32), and on one with 16 of 256 bits
#: (AVX2: 6 x 2 of 8, the classic 6 x 16 kernel). With the AVX-512 shape on an AVX2 CPU
#: each 16-lane vector takes two registers, the 16 accumulators 32 of the 16, and LLVM
#: spills them to memory every step of the sum (measurements: docs/performance.md).
GEOMETRY = {True: (8, 16), False: (6, 8)}
WIDE = _host_wide()
#: rows of a tile (MR) and vectors per row; NR = VECTORS * lanes (float32 lanes 16 with
#: AVX-512, else 8; float64 half as many)
MR = GEOMETRY[WIDE][0]
VECTORS = 2
LANES = {"float": GEOMETRY[WIDE][1], "double": GEOMETRY[WIDE][1] // 2}


def nr(itemsize: int) -> int:
    """Columns of one packed panel (NR) for a dtype of ``itemsize`` bytes."""
    return VECTORS * LANES["float" if itemsize == 4 else "double"]


#: the tile functions: name -> (accumulator type, element type of A and of the packed B)
KINDS = {
    "tile_f32": ("float", "float"),
    "tile_f64": ("double", "double"),
    # bf16 operands, two per 32-bit word (a pair of consecutive k), float32 sums: with the
    # AVX512_BF16 instruction, and the same products spelt in generic IR for any CPU
    "tile_bf16": ("float", "i32"),
    "tile_bf16e": ("float", "i32"),
}


def _k_step(name: str, W: int, vt: str, mr: int) -> list[str]:
    """IR of one step of the sum over K (over a pair of k for the bf16 tiles): the
    accumulators ``%acc{r}_{v}`` become ``%n{r}_{v}``; ``%bp`` and ``%ap`` point at this
    step's packed B and at row 0 of A."""
    fty, ety = KINDS[name]
    L = []
    if ety != "i32":
        for v in range(VECTORS):
            L.append(f"  %bq{v} = getelementptr {fty}, {fty}* %bp, i64 {v * W}")
            L.append(f"  %bv{v} = bitcast {fty}* %bq{v} to {vt}*")
            L.append(f"  %b{v} = load {vt}, {vt}* %bv{v}, align 1")
        for r in range(mr):
            L.append(f"  %aq{r} = getelementptr {fty}, {fty}* %ap, i64 %ro{r}")
            L.append(f"  %a{r} = load {fty}, {fty}* %aq{r}")
            L.append(f"  %ai{r} = insertelement {vt} undef, {fty} %a{r}, i32 0")
            L.append(f"  %as{r} = shufflevector {vt} %ai{r}, {vt} undef, <{W} x i32> "
                     "zeroinitializer")
            for v in range(VECTORS):
                L.append(f"  %n{r}_{v} = call {vt} @llvm.fma.{_sfx(fty, W)}({vt} %as{r}, "
                         f"{vt} %b{v}, {vt} %acc{r}_{v})")
        return L
    it = f"<{W} x i32>"
    high = "<" + ", ".join(["i32 -65536"] * W) + ">"  # 0xFFFF0000 in every lane
    sixteen = "<" + ", ".join(["i32 16"] * W) + ">"
    for v in range(VECTORS):
        L.append(f"  %bq{v} = getelementptr i32, i32* %bp, i64 {v * W}")
        L.append(f"  %bv{v} = bitcast i32* %bq{v} to {it}*")
        L.append(f"  %b{v} = load {it}, {it}* %bv{v}, align 4")
        if name == "tile_bf16":
            L.append(f"  %bb{v} = bitcast {it} %b{v} to <{2 * W} x bfloat>")
        else:  # bf16 is the high half of a float32: the even k shifted up, the odd masked
            L.append(f"  %bl{v}i = shl {it} %b{v}, {sixteen}")
            L.append(f"  %bl{v} = bitcast {it} %bl{v}i to {vt}")
            L.append(f"  %bh{v}i = and {it} %b{v}, {high}")
            L.append(f"  %bh{v} = bitcast {it} %bh{v}i to {vt}")
    for r in range(mr):
        L.append(f"  %aq{r} = getelementptr i32, i32* %ap, i64 %ro{r}")
        L.append(f"  %a{r} = load i32, i32* %aq{r}")
        if name == "tile_bf16":
            L.append(f"  %ai{r} = insertelement {it} undef, i32 %a{r}, i32 0")
            L.append(f"  %as{r} = shufflevector {it} %ai{r}, {it} undef, <{W} x i32> "
                     "zeroinitializer")
            L.append(f"  %ab{r} = bitcast {it} %as{r} to <{2 * W} x bfloat>")
            for v in range(VECTORS):
                L.append(f"  %n{r}_{v} = call {vt} @llvm.x86.avx512bf16.dpbf16ps.512("
                         f"{vt} %acc{r}_{v}, <{2 * W} x bfloat> %ab{r}, "
                         f"<{2 * W} x bfloat> %bb{v})")
            continue
        for half, op in (("l", f"shl i32 %a{r}, 16"), ("h", f"and i32 %a{r}, -65536")):
            L.append(f"  %a{half}{r}i = {op}")
            L.append(f"  %a{half}{r}f = bitcast i32 %a{half}{r}i to float")
            L.append(f"  %a{half}{r}v = insertelement {vt} undef, float %a{half}{r}f, i32 0")
            L.append(f"  %a{half}{r} = shufflevector {vt} %a{half}{r}v, {vt} undef, "
                     f"<{W} x i32> zeroinitializer")
        for v in range(VECTORS):
            L.append(f"  %m{r}_{v} = call {vt} @llvm.fma.{_sfx(fty, W)}({vt} %al{r}, "
                     f"{vt} %bl{v}, {vt} %acc{r}_{v})")
            L.append(f"  %n{r}_{v} = call {vt} @llvm.fma.{_sfx(fty, W)}({vt} %ah{r}, "
                     f"{vt} %bh{v}, {vt} %m{r}_{v})")
    return L


def _sfx(fty: str, W: int) -> str:
    return f"v{W}f{32 if fty == 'float' else 64}"


def _tile_ir(name: str, wide: bool = WIDE) -> str:
    """IR of one tile function (a name of :data:`KINDS`), for the geometry of a CPU with
    512-bit vectors (``wide``) or without."""
    fty, ety = KINDS[name]
    MR, lanes = GEOMETRY[wide]
    W = lanes if fty == "float" else lanes // 2
    NR = VECTORS * W
    sfx = _sfx(fty, W)
    vt = f"<{W} x {fty}>"
    mt = f"<{W} x i1>"
    L = [f"declare {vt} @llvm.fma.{sfx}({vt}, {vt}, {vt})",
         f"declare {vt} @llvm.masked.load.{sfx}.p0({vt}*, i32, {mt}, {vt})",
         f"declare void @llvm.masked.store.{sfx}.p0({vt}, {vt}*, i32, {mt})"]
    if name == "tile_bf16":
        L.append(f"declare {vt} @llvm.x86.avx512bf16.dpbf16ps.512({vt}, <{2 * W} x bfloat>, "
                 f"<{2 * W} x bfloat>)")
    masks = [f"%m{v}" for v in range(VECTORS)]
    # one body per row count mr = 1..MR, each with its accumulators in registers
    for mr in range(1, MR + 1):
        L.append(f"define internal void @{name}_{mr}(i64 %K, {ety}* noalias %Ap, i64 %aks, "
                 f"i64 %ars, {ety}* noalias %Bp, {fty}* noalias %C, i64 %ldc, i32 %beta, "
                 + ", ".join(f"{mt} %m{v}" for v in range(VECTORS)) + ") alwaysinline {")
        L.append("entry:")
        for r in range(mr):
            L.append(f"  %ro{r} = mul i64 {r}, %ars")
            L.append(f"  %co{r} = mul i64 {r}, %ldc")
            L.append(f"  %crow{r} = getelementptr {fty}, {fty}* %C, i64 %co{r}")
            for v in range(VECTORS):
                L.append(f"  %cp{r}_{v}s = getelementptr {fty}, {fty}* %crow{r}, i64 {v * W}")
                L.append(f"  %cp{r}_{v} = bitcast {fty}* %cp{r}_{v}s to {vt}*")
        L.append("  %isb = icmp ne i32 %beta, 0")
        L.append("  br i1 %isb, label %load, label %zero")
        L.append("load:")
        for r in range(mr):
            for v in range(VECTORS):
                L.append(f"  %c{r}_{v} = call {vt} @llvm.masked.load.{sfx}.p0({vt}* %cp{r}_{v}, "
                         f"i32 1, {mt} {masks[v]}, {vt} zeroinitializer)")
        L.append("  br label %check")
        L.append("zero:")
        L.append("  br label %check")
        L.append("check:")
        for r in range(mr):
            for v in range(VECTORS):
                L.append(f"  %s{r}_{v} = phi {vt} [%c{r}_{v}, %load], [zeroinitializer, %zero]")
        L.append("  %any = icmp sgt i64 %K, 0")
        L.append("  br i1 %any, label %loop, label %done")
        L.append("loop:")
        L.append("  %k = phi i64 [0, %check], [%k1, %loop]")
        L.append(f"  %ap = phi {ety}* [%Ap, %check], [%ap1, %loop]")
        L.append(f"  %bp = phi {ety}* [%Bp, %check], [%bp1, %loop]")
        for r in range(mr):
            for v in range(VECTORS):
                L.append(f"  %acc{r}_{v} = phi {vt} [%s{r}_{v}, %check], [%n{r}_{v}, %loop]")
        L.extend(_k_step(name, W, vt, mr))
        L.append(f"  %ap1 = getelementptr {ety}, {ety}* %ap, i64 %aks")
        L.append(f"  %bp1 = getelementptr {ety}, {ety}* %bp, i64 {NR}")
        L.append("  %k1 = add i64 %k, 1")
        L.append("  %more = icmp slt i64 %k1, %K")
        L.append("  br i1 %more, label %loop, label %done")
        L.append("done:")
        for r in range(mr):  # all phi nodes first, then the stores
            for v in range(VECTORS):
                L.append(f"  %o{r}_{v} = phi {vt} [%s{r}_{v}, %check], [%n{r}_{v}, %loop]")
        for r in range(mr):
            for v in range(VECTORS):
                L.append(f"  call void @llvm.masked.store.{sfx}.p0({vt} %o{r}_{v}, "
                         f"{vt}* %cp{r}_{v}, i32 1, {mt} {masks[v]})")
        L.append("  ret void")
        L.append("}")
    # the entry point: column masks from nc, then the body for mr rows
    iota = [", ".join(f"i64 {i + v * W}" for i in range(W)) for v in range(VECTORS)]
    L.append(f"define void @{name}(i64 %K, {ety}* noalias %Ap, i64 %aks, i64 %ars, "
             f"{ety}* noalias %Bp, {fty}* noalias %C, i64 %ldc, i32 %beta, i64 %mr, "
             "i64 %nc) #0 {")
    L.append("entry:")
    L.append(f"  %ncv = insertelement <{W} x i64> undef, i64 %nc, i32 0")
    L.append(f"  %ncs = shufflevector <{W} x i64> %ncv, <{W} x i64> undef, <{W} x i32> "
             "zeroinitializer")
    for v in range(VECTORS):
        L.append(f"  %m{v} = icmp slt <{W} x i64> <{iota[v]}>, %ncs")
    margs = ", ".join(f"{mt} %m{v}" for v in range(VECTORS))
    cases = " ".join(f"i64 {m}, label %t{m}" for m in range(1, MR + 1))
    L.append(f"  switch i64 %mr, label %exit [{cases}]")
    for m in range(1, MR + 1):
        L.append(f"t{m}:")
        L.append(f"  call void @{name}_{m}(i64 %K, {ety}* %Ap, i64 %aks, i64 %ars, "
                 f"{ety}* %Bp, {fty}* %C, i64 %ldc, i32 %beta, {margs})")
        L.append("  br label %exit")
    L.append("exit:")
    L.append("  ret void")
    L.append("}")
    return "\n".join(L)


def module_ir(names=("tile_f32", "tile_f64", "tile_bf16e"), wide: bool = WIDE) -> str:
    """The module of the tile functions ``names`` (each declaration once), in the geometry
    of a CPU with 512-bit vectors (``wide``) or without."""
    # Clang marks functions that use 512-bit vectors this way; without it LLVM splits
    # them in two on CPUs where it prefers 256-bit vectors (Intel's AVX-512 cores).
    attrs = 'attributes #0 = { nounwind "min-legal-vector-width"="512" }'
    lines, declared = [], set()
    for name in names:
        for line in _tile_ir(name, wide).split("\n"):
            if line.startswith("declare"):
                if line in declared:
                    continue
                declared.add(line)
            lines.append(line)
    return "\n".join(lines + [attrs])


def has_bf16(features: str) -> bool:
    """Whether LLVM's feature string of a CPU (``+avx512bf16,...``) holds the AVX512_BF16
    instructions. LLVM reports a feature only when the operating system saves its
    registers too, so this is what the code may use, not only what the chip has."""
    return "+avx512bf16" in features.split(",")


def functions(features: str) -> tuple[str, ...]:
    """The tile functions compiled for a CPU with LLVM ``features``: the float32 and
    float64 tiles and the emulated bf16 one everywhere, the AVX512_BF16 one where it runs."""
    return ("tile_f32", "tile_f64", "tile_bf16e") + (
        ("tile_bf16",) if has_bf16(features) and WIDE else ())


def assembly(names, cpu: str, features: str = "", wide: bool = True) -> str:
    """The machine code of the tile functions ``names`` for ``cpu``, as assembly text, for
    reading (and for tests that the bf16 tile uses the instruction on a CPU that has it,
    on machines that have not)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, features=features,
                                                                 opt=3)
    module = llvm.parse_assembly(module_ir(names, wide))
    module.verify()
    _optimise(llvm, module, tm)
    return tm.emit_assembly(module)


_lock = threading.Lock()
_engine = None
_addresses: dict[str, int] = {}


def _optimise(llvm, module, target_machine) -> None:
    if hasattr(llvm, "create_pass_builder"):  # llvmlite >= 0.45: the new pass manager
        pto = llvm.create_pipeline_tuning_options(3)
        pb = llvm.create_pass_builder(target_machine, pto)
        pb.getModulePassManager().run(module, pb)
    else:
        pmb = llvm.create_pass_manager_builder()
        pmb.opt_level = 3
        pm = llvm.create_module_pass_manager()
        pmb.populate(pm)
        pm.run(module)


def _cache_file(ir_text: str, cpu: str, features: str):
    """Where the machine code for this IR and CPU is kept: with numba's cached kernels
    (``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` beside this file)."""
    import hashlib
    import os
    from pathlib import Path

    import llvmlite

    key = hashlib.sha256("\0".join([ir_text, cpu, features, llvmlite.__version__]).encode())
    folder = os.environ.get("NUMBA_CACHE_DIR") or Path(__file__).parent / "__pycache__"
    return Path(folder) / f"tile-{key.hexdigest()[:20]}.o"


def _write_atomically(path, data: bytes) -> None:
    """Store ``data`` followed by its SHA-256, via a temporary file renamed into place."""
    import hashlib
    import os
    import tempfile

    tmp = None
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data + hashlib.sha256(data).digest())
        os.replace(tmp, path)
    except OSError:  # a read-only installation compiles in each process instead
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _read_checked(path) -> bytes | None:
    """The machine code stored by :func:`_write_atomically`, or None if it is missing or
    does not match its checksum (never hand damaged code to the loader)."""
    import hashlib

    try:
        raw = path.read_bytes()
    except OSError:
        return None
    data, digest = raw[:-32], raw[-32:]
    return data if len(raw) > 32 and hashlib.sha256(data).digest() == digest else None


def addresses() -> dict[str, int]:
    """``{name: address}`` of the tile functions for this CPU (:func:`functions`), compiling
    the module on first call.

    The machine code lives as long as the process (the engine is kept here). It is also
    kept on disk, keyed by the IR, the CPU and llvmlite's version, so later processes
    skip LLVM's optimisation and code generation, most of the first call's time
    (measurements: docs/performance.md).
    """
    global _engine
    with _lock:
        if not _addresses:
            import llvmlite.binding as llvm

            try:  # llvmlite < 0.45 wants this; later versions do it themselves
                llvm.initialize()
            except Exception:  # noqa: BLE001 - "initialize() is deprecated/removed"
                pass
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
            target = llvm.Target.from_default_triple()
            tm = target.create_target_machine(cpu=cpu, features=features, opt=3)
            names = functions(features)
            text = module_ir(names)
            cache = _cache_file(text, cpu, features)
            cached = _read_checked(cache)
            module = llvm.parse_assembly(text)
            module.verify()
            if cached is None:
                _optimise(llvm, module, tm)
            engine = llvm.create_mcjit_compiler(module, tm)
            engine.set_object_cache(
                notify_func=lambda mod, data: _write_atomically(cache, data),
                getbuffer_func=lambda mod: cached)
            engine.finalize_object()
            _engine = engine
            for name in names:
                _addresses[name] = engine.get_function_address(name)
    return dict(_addresses)
