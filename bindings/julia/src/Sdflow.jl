# SPDX-License-Identifier: MIT
"""
    Sdflow

Julia API of libsdflow, mirroring the Python package `sdflow`
(docs/julia.md). UNTESTED AT RUN TIME: Julia is not packaged in Debian
bookworm, where libsdflow is built and tested; `make api-check` only checks
that the generated raw layer (LibSdflow.jl) is up to date and that every
`ccall` signature matches the C declaration.

Arrays are Julia matrices with one sample per ROW (n x d), as in Python;
they are transposed into libsdflow's row-major layout at the call.
"""
module Sdflow

include("LibSdflow.jl")
using .LibSdflow
const L = LibSdflow

export Ctx, Process, Model, Sampler, Density, Trainer, SdflowError, UnknownNameError
export gaussian, gmm, kernel, mlp, callback_model, load_model, save, to_bytes
export transport, fit!, logpdf, bits_per_dim, score, evaluate, sample, jacobian, divergence
export step!, set!, get, energy_distance, mmd2, sliced_wasserstein, assignment, coupling_pair, rng_normal
export version, set_model!, set_process!, set_data!, set_progress!, set_log!

# Sampler runs and statistics extend Base.run and Base.stat (exporting new
# functions of those names would clash with Base's in user code).

abstract type AbstractObject end

# ---- errors ---------------------------------------------------------------

"""A libsdflow call failed: `status` (sdflow_status), `name` (sdflow_strerror), `message`, `func`."""
struct SdflowError <: Exception
    status::Int
    name::String
    message::String
    func::String
end
Base.showerror(io::IO, e::SdflowError) = print(io, e.func, ": ", e.name, ": ", e.message)

"""An unknown kind, option, value, role or statistic name; `valid` lists the known ones."""
struct UnknownNameError <: Exception
    what::String
    name::String
    valid::Vector{String}
end
Base.showerror(io::IO, e::UnknownNameError) =
    print(io, "unknown ", e.what, " \"", e.name, "\"; valid: ", join(e.valid, ", "))

cstr(p::Ptr{Cchar}) = p == C_NULL ? "" : unsafe_string(p)

"""(number, string) of the loaded library."""
version() = (Int(L.sdflow_version()), cstr(L.sdflow_version_string()))

function lookup(what::String, table::Dict{String,Cint}, v)
    v isa Integer && v in values(table) && return Cint(v)
    s = lowercase(string(v))
    haskey(table, s) && return table[s]
    valid = [k for (k, _) in sort(collect(table), by = kv -> kv[2])]
    throw(UnknownNameError(what, string(v), valid))
end

# ---- context --------------------------------------------------------------

"""
    Ctx(; seed=0, threads=1, log=true, options...)

A libsdflow context. Close with `close(ctx)` (objects made from it must be
closed first; `close` does that) or use `Ctx(...) do ctx ... end`. Library
log messages go to Julia's logging (`@info`, ...) unless `log=false`.
"""
mutable struct Ctx
    h::Ptr{Cvoid}
    children::Vector{Any}
    pending::Any        # an exception raised by a Julia callback, re-thrown after the call
    progress::Any       # nothing or f(done, total) -> Bool (true cancels)
    function Ctx(; seed::Integer = 0, threads::Integer = 1, log::Bool = true, options...)
        out = Ref{Ptr{Cvoid}}(C_NULL)
        st = L.sdflow_ctx_create(out, C_NULL)
        st == 0 || throw(SdflowError(st, cstr(L.sdflow_strerror(st)), "sdflow_ctx_create failed", "sdflow_ctx_create"))
        ctx = new(out[], Any[], nothing, nothing)
        finalizer(close, ctx)
        set!(ctx, "seed", seed)
        set!(ctx, "threads", threads)
        log && set_log!(ctx, true)
        for (k, v) in options
            set!(ctx, string(k), v)
        end
        ctx
    end
end

function Ctx(f::Function; kw...)
    ctx = Ctx(; kw...)
    try
        return f(ctx)
    finally
        close(ctx)
    end
end

Base.show(io::IO, c::Ctx) = c.h == C_NULL ? print(io, "Sdflow.Ctx(closed)") :
    print(io, "Sdflow.Ctx(seed=", get(c, "seed"), ", threads=", get(c, "threads"), ")")

function check(ctx, st::Integer, func::String)
    if st != 0
        msg = ctx === nothing ? "" : cstr(Ptr{Cchar}(L.sdflow_ctx_last_error(ctx.h)))
        err = SdflowError(st, cstr(L.sdflow_strerror(st)), msg, func)
        if ctx !== nothing && ctx.pending !== nothing
            e, ctx.pending = ctx.pending, nothing
            throw(CompositeException([e, err]))
        end
        throw(err)
    end
    nothing
end

macro chk(ctx, call)
    fname = string(call.args[1].args[end].value)   # the raw-layer call -> its C name, for the error
    :(check($(esc(ctx)), $(esc(call)), $fname))
end

# ---- options --------------------------------------------------------------

function option_key(name::String)
    k = Ref{Cint}(0)
    if L.sdflow_option_from_name(name, k) != 0
        valid = String[]
        for v in values(L.sdflow_option_values)
            p = L.sdflow_option_name(v)
            p == C_NULL || push!(valid, unsafe_string(p))
        end
        throw(UnknownNameError("option", name, sort(valid)))
    end
    k[]
end

const CNAME = Dict{DataType,String}()

handle(o) = (o.h == C_NULL && error("$(typeof(o)) is closed"); o.h)
ctxof(o) = o isa Ctx ? o : o.ctx

function resolve(o, name::String)
    for pre in prefixes(o)
        if !startswith(name, pre)
            k = Ref{Cint}(0)
            L.sdflow_option_from_name(pre * name, k) == 0 && return pre * name
        end
    end
    name
end
prefixes(o) = String[]

"""
    set!(obj, name, value)

Sets option `name` of a Ctx, Process, Model, Sampler, Density or Trainer;
enum-valued options take their value names (`set!(s, "solver", "dopri5")`).
"""
function set!(o, name::AbstractString, value)
    name = resolve(o, String(name))
    key = option_key(name)
    if haskey(L.option_value_enums, key)
        value = lookup(name, L.option_value_enums[key], value)
    end
    ty = L.sdflow_option_get_type(key)
    c, h, ctx = CNAME[typeof(o)], handle(o), ctxof(o)
    if ty == L.SDFLOW_TYPE_INT
        st = getfield(L, Symbol("sdflow_$(c)_set_int"))(h, key, Clong(value))
    elseif ty == L.SDFLOW_TYPE_DOUBLE
        st = getfield(L, Symbol("sdflow_$(c)_set_double"))(h, key, Cdouble(value))
    else
        st = getfield(L, Symbol("sdflow_$(c)_set_u64"))(h, key, UInt64(value))
    end
    check(ctx, st, "sdflow_$(c)_set")
    o
end

"""
    get(obj, name; raw=false)

The value of option `name`; enum-valued options give their value name unless `raw`.
"""
function Base.get(o::Union{Ctx,AbstractObject}, name::AbstractString; raw::Bool = false)
    name = resolve(o, String(name))
    key = option_key(name)
    ty = L.sdflow_option_get_type(key)
    c, h, ctx = CNAME[typeof(o)], handle(o), ctxof(o)
    if ty == L.SDFLOW_TYPE_INT
        r = Ref{Clong}(0); st = getfield(L, Symbol("sdflow_$(c)_get_int"))(h, key, r)
    elseif ty == L.SDFLOW_TYPE_DOUBLE
        r = Ref{Cdouble}(0); st = getfield(L, Symbol("sdflow_$(c)_get_double"))(h, key, r)
    else
        r = Ref{UInt64}(0); st = getfield(L, Symbol("sdflow_$(c)_get_u64"))(h, key, r)
    end
    check(ctx, st, "sdflow_$(c)_get")
    if !raw && haskey(L.option_value_enums, key)
        for (k, v) in L.option_value_enums[key]
            v == r[] && return k
        end
    end
    r[]
end

# ---- callbacks (a static trampoline per C callback type; the Julia object
# ---- travels as user_data, kept alive by its owner) ------------------------

function _log_tramp(level::Cint, msg::Ptr{Cchar}, ud::Ptr{Cvoid})::Cvoid
    s = unsafe_string(msg)
    level <= 0 ? (@error s) : level == 1 ? (@warn s) : level == 2 ? (@info s) : (@debug s)
    nothing
end

function _progress_tramp(ud::Ptr{Cvoid}, done::Clong, total::Clong)::Cint
    ctx = unsafe_pointer_to_objref(ud)::Ctx
    try
        return ctx.progress !== nothing && ctx.progress(Int(done), Int(total)) === true ? Cint(1) : Cint(0)
    catch e
        ctx.pending === nothing && (ctx.pending = e)
        return Cint(1)
    end
end

struct CallbackHolder
    ctx::Ctx
    fn::Any
    jvp::Any
end

rows_in(p::Ptr{Cdouble}, n, d) = permutedims(copy(unsafe_wrap(Array, p, (Int(d), Int(n)))))   # C n x d -> Julia n x d
function rows_out!(p::Ptr{Cdouble}, Y::AbstractMatrix, n, d)
    size(Y) == (Int(n), Int(d)) || error("callback returned size $(size(Y)), expected ($(Int(n)), $(Int(d)))")
    unsafe_wrap(Array, p, (Int(d), Int(n))) .= permutedims(Y)
end

function _model_tramp(n::Csize_t, d::Csize_t, x::Ptr{Cdouble}, t::Ptr{Cdouble}, out::Ptr{Cdouble},
                      ud::Ptr{Cvoid})::Cint
    h = unsafe_pointer_to_objref(ud)::CallbackHolder
    try
        rows_out!(out, h.fn(rows_in(x, n, d), copy(unsafe_wrap(Array, t, Int(n)))), n, d)
        return Cint(0)
    catch e
        h.ctx.pending === nothing && (h.ctx.pending = e)
        return Cint(1)
    end
end

function _jvp_tramp(n::Csize_t, d::Csize_t, x::Ptr{Cdouble}, t::Ptr{Cdouble}, v::Ptr{Cdouble}, jv::Ptr{Cdouble},
                    ud::Ptr{Cvoid})::Cint
    h = unsafe_pointer_to_objref(ud)::CallbackHolder
    try
        rows_out!(jv, h.jvp(rows_in(x, n, d), copy(unsafe_wrap(Array, t, Int(n))), rows_in(v, n, d)), n, d)
        return Cint(0)
    catch e
        h.ctx.pending === nothing && (h.ctx.pending = e)
        return Cint(1)
    end
end

const CB = Dict{Symbol,Ptr{Cvoid}}()
function __init__()
    # C function pointers are made at load time (they are not valid across precompilation).
    CB[:log] = @cfunction(_log_tramp, Cvoid, (Cint, Ptr{Cchar}, Ptr{Cvoid}))
    CB[:progress] = @cfunction(_progress_tramp, Cint, (Ptr{Cvoid}, Clong, Clong))
    CB[:model] = @cfunction(_model_tramp, Cint, (Csize_t, Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    CB[:jvp] = @cfunction(_jvp_tramp, Cint,
                          (Csize_t, Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
end

"""`set_log!(ctx, true)` routes library messages to Julia logging; `false` drops them."""
set_log!(ctx::Ctx, on::Bool) = @chk ctx L.sdflow_ctx_set_log(ctx.h, on ? CB[:log] : C_NULL, C_NULL)

"""`set_progress!(ctx, f)`: f(done, total) after each step of long calls; returning true cancels. `nothing` removes."""
function set_progress!(ctx::Ctx, f)
    ctx.progress = f
    @chk ctx L.sdflow_ctx_set_progress(ctx.h, f === nothing ? C_NULL : CB[:progress],
                                       f === nothing ? C_NULL : pointer_from_objref(ctx))
end

# ---- objects --------------------------------------------------------------

function own!(o, ctx::Ctx)
    push!(ctx.children, o)
    finalizer(close, o)
    o
end

function Base.close(o::AbstractObject)
    if o.h != C_NULL
        getfield(L, Symbol("sdflow_$(CNAME[typeof(o)])_free"))(o.h)
        o.h = C_NULL
    end
    nothing
end

function Base.close(ctx::Ctx)
    if ctx.h != C_NULL
        for T in (Trainer, Sampler, Density, Model, Process), o in ctx.children
            o isa T && close(o)
        end
        empty!(ctx.children)
        L.sdflow_ctx_free(ctx.h)
        ctx.h = C_NULL
    end
    nothing
end

rowmajor(X::AbstractMatrix) = Matrix{Cdouble}(permutedims(X))        # n x d -> the d x n buffer C reads as n x d
fromrowmajor(B::Matrix{Cdouble}) = permutedims(B)                      # back to n x d
function checkcols(X::AbstractMatrix, d::Integer, name::String)
    size(X, 2) == d || throw(DimensionMismatch("$name must have $d columns (the model dimension), has size $(size(X))"))
end
times(t::Real, n) = fill(Cdouble(t), n)
times(t::AbstractVector, n) = (length(t) == n || throw(DimensionMismatch("t must have $n entries")); Vector{Cdouble}(t))

"""`Process(ctx, "vp"; options...)`: vp, vp_cosine, subvp, ve, interp_linear, interp_trig."""
mutable struct Process <: AbstractObject
    h::Ptr{Cvoid}
    ctx::Ctx
end
CNAME[Process] = "process"
prefixes(::Process) = ["proc_"]
function Process(ctx::Ctx, kind::AbstractString = "vp"; options...)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_process_create(ctx.h, lookup("process kind", L.sdflow_process_kind_values, kind), out)
    p = own!(Process(out[], ctx), ctx)
    for (k, v) in options
        set!(p, string(k), v)
    end
    p
end

function time_range(p::Process)
    a, b = Ref{Cdouble}(0), Ref{Cdouble}(0)
    @chk p.ctx L.sdflow_process_time_range(p.h, a, b)
    (a[], b[])
end

function coefficients(p::Process, t::AbstractVector)
    t = Vector{Cdouble}(t); n = length(t)
    a, s, f, g = zeros(n), zeros(n), zeros(n), zeros(n)
    @chk p.ctx L.sdflow_process_coefficients(p.h, n, t, a, s, f, g)
    (a, s, f, g)
end

function prior_sample(p::Process, n::Integer, d::Integer; stream::Integer = 0, first_index::Integer = 0)
    B = Matrix{Cdouble}(undef, d, n)
    @chk p.ctx L.sdflow_process_prior_sample(p.h, stream, first_index, n, d, B)
    fromrowmajor(B)
end

"""Score-like models: `gaussian`, `gmm`, `kernel`, `mlp`, `callback_model`, `load_model`."""
mutable struct Model <: AbstractObject
    h::Ptr{Cvoid}
    ctx::Ctx
    dim::Int
    keep::Any
end
CNAME[Model] = "model"
prefixes(::Model) = ["mlp_"]
Base.show(io::IO, m::Model) = print(io, "Sdflow.Model(d=", m.dim, ")")
newmodel(ctx, h, keep = nothing) = own!(Model(h, ctx, Int(L.sdflow_model_dim(h)), keep), ctx)

function gaussian(ctx::Ctx, mean::AbstractVector, cov::AbstractMatrix)
    d = length(mean)
    size(cov) == (d, d) || throw(DimensionMismatch("cov must be $d x $d"))
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_model_create_gaussian(ctx.h, d, Vector{Cdouble}(mean), rowmajor(cov), out)
    newmodel(ctx, out[])
end

"""`gmm(ctx, weights (k), means (k x d), covs (vector of k d x d matrices))`."""
function gmm(ctx::Ctx, weights::AbstractVector, means::AbstractMatrix, covs::AbstractVector)
    k, d = size(means)
    length(weights) == k && length(covs) == k || throw(DimensionMismatch("one weight and covariance per mean row"))
    all(size(c) == (d, d) for c in covs) || throw(DimensionMismatch("covariances must be $d x $d"))
    C = reduce(vcat, [vec(rowmajor(c)) for c in covs])
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_model_create_gmm(ctx.h, k, d, Vector{Cdouble}(weights), rowmajor(means), C, out)
    newmodel(ctx, out[])
end

function kernel(ctx::Ctx, data::AbstractMatrix)
    m, d = size(data)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_model_create_kernel(ctx.h, m, d, rowmajor(data), out)
    newmodel(ctx, out[])
end

"""`mlp(ctx, d; depth=3, width=128, activation="silu", output="eps", ...)` (options without the `mlp_` prefix)."""
function mlp(ctx::Ctx, d::Integer; options...)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_model_create_mlp(ctx.h, d, out)
    m = newmodel(ctx, out[])
    for (k, v) in options
        set!(m, string(k), v)
    end
    m
end

"""
    callback_model(ctx, d, f; output="score", jvp=nothing)

A model computed in Julia: `f(x, t)` gets x (n x d) and t (n) and returns the
n x d outputs; `jvp(x, t, v)` (optional) the Jacobian-vector products. An
exception in f stops the library call and is rethrown from it.
"""
function callback_model(ctx::Ctx, d::Integer, f; output = "score", jvp = nothing)
    holder = CallbackHolder(ctx, f, jvp)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_model_create_callback(ctx.h, d, lookup("output", L.sdflow_output_values, output), CB[:model],
                                            pointer_from_objref(holder), out)
    m = newmodel(ctx, out[], holder)
    jvp === nothing || @chk ctx L.sdflow_model_set_callback_jvp(m.h, CB[:jvp], pointer_from_objref(holder))
    m
end

function evaluate(m::Model, p::Union{Process,Nothing}, x::AbstractMatrix, t; output = "score")
    checkcols(x, m.dim, "x")
    n = size(x, 1)
    B = Matrix{Cdouble}(undef, m.dim, n)
    @chk m.ctx L.sdflow_model_eval(m.h, p === nothing ? C_NULL : p.h, n, rowmajor(x), times(t, n),
                                   lookup("output", L.sdflow_output_values, output), B)
    fromrowmajor(B)
end
score(m::Model, p, x, t) = evaluate(m, p, x, t; output = "score")

function logpdf(m::Model, p::Union{Process,Nothing}, x::AbstractMatrix, t)
    checkcols(x, m.dim, "x")
    n = size(x, 1)
    lp = zeros(n)
    @chk m.ctx L.sdflow_model_logpdf(m.h, p === nothing ? C_NULL : p.h, n, rowmajor(x), times(t, n), lp)
    lp
end

function divergence(m::Model, p::Union{Process,Nothing}, x::AbstractMatrix, t)
    checkcols(x, m.dim, "x")
    n = size(x, 1)
    dv = zeros(n)
    @chk m.ctx L.sdflow_model_divergence(m.h, p === nothing ? C_NULL : p.h, n, rowmajor(x), times(t, n), dv)
    dv
end

"""`jacobian(m, p, x, t)`: n x d x d array, J[i, a, b] = d score_a / d x_b at row i."""
function jacobian(m::Model, p::Union{Process,Nothing}, x::AbstractMatrix, t)
    checkcols(x, m.dim, "x")
    n, d = size(x)
    B = Array{Cdouble}(undef, d, d, n)   # C: row i, then d x d row-major = Julia [b, a, i]
    @chk m.ctx L.sdflow_model_jacobian(m.h, p === nothing ? C_NULL : p.h, n, rowmajor(x), times(t, n), B)
    permutedims(B, (3, 2, 1))
end

function sample(m::Model, n::Integer; stream::Integer = 0, first_index::Integer = 0)
    B = Matrix{Cdouble}(undef, m.dim, n)
    @chk m.ctx L.sdflow_model_sample(m.h, stream, first_index, n, B)
    fromrowmajor(B)
end

"""`save(m, path; process=nothing)`: a model file (docs/model-files.md)."""
save(m::Model, path::AbstractString; process = nothing) =
    @chk m.ctx L.sdflow_model_save(m.h, process === nothing ? C_NULL : process.h, path)

function to_bytes(m::Model; process = nothing)
    n = Ref{Csize_t}(0)
    ph = process === nothing ? C_NULL : process.h
    @chk m.ctx L.sdflow_model_save_buffer(m.h, ph, C_NULL, 0, n)
    buf = Vector{UInt8}(undef, n[])
    @chk m.ctx L.sdflow_model_save_buffer(m.h, ph, buf, length(buf), n)
    buf
end

"""`load_model(ctx, path_or_bytes)` -> (Model, Process or nothing)."""
function load_model(ctx::Ctx, src::Union{AbstractString,Vector{UInt8}})
    m, p = Ref{Ptr{Cvoid}}(C_NULL), Ref{Ptr{Cvoid}}(C_NULL)
    if src isa Vector{UInt8}
        @chk ctx L.sdflow_model_load_buffer(ctx.h, src, length(src), m, p)
    else
        @chk ctx L.sdflow_model_load(ctx.h, src, m, p)
    end
    (newmodel(ctx, m[]), p[] == C_NULL ? nothing : own!(Process(p[], ctx), ctx))
end

"""
    Sampler(ctx, "pf_ode"; process=vp, score=model, solver="dopri5", ...)

Keywords naming a role (score, target, velocity, data, ...) with a Model bind
it; `process` binds the process; the others are options.
"""
mutable struct Sampler <: AbstractObject
    h::Ptr{Cvoid}
    ctx::Ctx
    kind::String
    keep::Dict{String,Any}
end
CNAME[Sampler] = "sampler"
Base.show(io::IO, s::Sampler) = print(io, "Sdflow.Sampler(", s.kind, ")")
function Sampler(ctx::Ctx, kind::AbstractString; kw...)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_sampler_create(ctx.h, lookup("sampler kind", L.sdflow_sampler_kind_values, kind), out)
    s = own!(Sampler(out[], ctx, lowercase(kind), Dict{String,Any}()), ctx)
    for (k, v) in kw
        k = string(k)
        if k == "process"
            set_process!(s, v)
        elseif haskey(L.sdflow_role_values, k) && v isa Model
            set_model!(s, v, k)
        else
            set!(s, k, v)
        end
    end
    s
end

function set_process!(s::Sampler, p::Process)
    @chk s.ctx L.sdflow_sampler_set_process(s.h, p.h)
    s.keep["process"] = p
    s
end

function set_model!(s::Sampler, m::Union{Model,Nothing}, role::AbstractString = "score")
    @chk s.ctx L.sdflow_sampler_set_model(s.h, lookup("role", L.sdflow_role_values, role), m === nothing ? C_NULL : m.h)
    s.keep[lowercase(role)] = m
    s
end

function dim(s::Sampler)
    roles = s.kind == "sdflow" ? ("target",) : s.kind == "interpolant" ? ("velocity",) :
            s.kind == "dsb" ? ("data", "prior", "backward", "forward") : ("score",)
    for r in roles
        get(s.keep, r, nothing) isa Model && return s.keep[r].dim
    end
    error("no model bound that fixes the dimension of a $(s.kind) sampler")
end

"""`run(s; n)` draws the start; `run(s, x_init)` starts from the rows of x_init. Returns n x d."""
function Base.run(s::Sampler, x_init::Union{AbstractMatrix,Nothing} = nothing; n::Union{Integer,Nothing} = nothing)
    d = dim(s)
    if x_init === nothing
        n === nothing && throw(ArgumentError("run needs x_init or n"))
        X = C_NULL
    else
        checkcols(x_init, d, "x_init")
        n = size(x_init, 1)
        X = rowmajor(x_init)
    end
    B = Matrix{Cdouble}(undef, d, n)
    @chk s.ctx L.sdflow_sampler_run(s.h, n, X, B)
    fromrowmajor(B)
end

function transport(s::Sampler, x::AbstractMatrix, t_from::Real, t_to::Real)
    checkcols(x, dim(s), "x")
    B = Matrix{Cdouble}(undef, size(x, 2), size(x, 1))
    @chk s.ctx L.sdflow_sampler_transport(s.h, size(x, 1), t_from, t_to, rowmajor(x), B)
    fromrowmajor(B)
end

fit!(s::Sampler, iterations::Integer = 1) = (@chk s.ctx L.sdflow_sampler_fit(s.h, iterations); s)

function Base.stat(s::Sampler, name::AbstractString)
    v = Ref{Cdouble}(0)
    @chk s.ctx L.sdflow_sampler_get_stat(s.h, lookup("statistic", L.sdflow_stat_values, name), v)
    v[]
end

"""`Density(ctx, "pf_ode_exact"; process=vp, model=m, options...)`."""
mutable struct Density <: AbstractObject
    h::Ptr{Cvoid}
    ctx::Ctx
    keep::Dict{String,Any}
end
CNAME[Density] = "density"
function Density(ctx::Ctx, kind::AbstractString; process = nothing, model = nothing, base = nothing, options...)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_density_create(ctx.h, lookup("density kind", L.sdflow_density_kind_values, kind), out)
    e = own!(Density(out[], ctx, Dict{String,Any}()), ctx)
    process === nothing || set_process!(e, process)
    model === nothing || set_model!(e, model)
    if base !== nothing
        @chk ctx L.sdflow_density_set_base(e.h, base.h)
        e.keep["base"] = base
    end
    for (k, v) in options
        set!(e, string(k), v)
    end
    e
end
set_process!(e::Density, p::Process) = (@chk e.ctx L.sdflow_density_set_process(e.h, p.h); e.keep["process"] = p; e)
set_model!(e::Density, m::Model) = (@chk e.ctx L.sdflow_density_set_model(e.h, m.h); e.keep["model"] = m; e)

"""`logpdf(e, x)` -> (log p, standard error) per row of x."""
function logpdf(e::Density, x::AbstractMatrix)
    haskey(e.keep, "model") || error("no model bound")
    checkcols(x, e.keep["model"].dim, "x")
    n = size(x, 1)
    lp, se = zeros(n), zeros(n)
    @chk e.ctx L.sdflow_density_logpdf(e.h, n, rowmajor(x), lp, se)
    (lp, se)
end

function bits_per_dim(e::Density, x::AbstractMatrix)
    checkcols(x, e.keep["model"].dim, "x")
    n = size(x, 1)
    b, se = zeros(n), zeros(n)
    @chk e.ctx L.sdflow_density_bits_per_dim(e.h, n, rowmajor(x), b, se)
    (b, se)
end

"""`Trainer(ctx, "dsm"; model=mlp, process=vp, data=x, lr=1e-3, ...)` (options without `train_`)."""
mutable struct Trainer <: AbstractObject
    h::Ptr{Cvoid}
    ctx::Ctx
    keep::Dict{String,Any}
end
CNAME[Trainer] = "trainer"
prefixes(::Trainer) = ["train_"]
function Trainer(ctx::Ctx, kind::AbstractString = "dsm"; model = nothing, process = nothing, data = nothing,
                 options...)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    @chk ctx L.sdflow_trainer_create(ctx.h, lookup("trainer kind", L.sdflow_loss_kind_values, kind), out)
    t = own!(Trainer(out[], ctx, Dict{String,Any}()), ctx)
    model === nothing || set_model!(t, model)
    process === nothing || set_process!(t, process)
    data === nothing || set_data!(t, data)
    for (k, v) in options
        set!(t, string(k), v)
    end
    t
end
set_model!(t::Trainer, m::Model) = (@chk t.ctx L.sdflow_trainer_set_model(t.h, m.h); t.keep["model"] = m; t)
set_process!(t::Trainer, p::Process) = (@chk t.ctx L.sdflow_trainer_set_process(t.h, p.h); t.keep["process"] = p; t)
function set_data!(t::Trainer, x::AbstractMatrix)
    haskey(t.keep, "model") && checkcols(x, t.keep["model"].dim, "data")
    @chk t.ctx L.sdflow_trainer_set_data(t.h, size(x, 1), size(x, 2), rowmajor(x))
    t
end
step!(t::Trainer) = (@chk t.ctx L.sdflow_trainer_step(t.h); Base.stat(t, "loss"))
fit!(t::Trainer, steps::Integer) = (@chk t.ctx L.sdflow_trainer_fit(t.h, steps); Base.stat(t, "running_loss"))
function Base.stat(t::Trainer, name::AbstractString)
    v = Ref{Cdouble}(0)
    @chk t.ctx L.sdflow_trainer_get_stat(t.h, lookup("statistic", L.sdflow_train_stat_values, name), v)
    v[]
end
copy_ema!(t::Trainer, m::Model) = (@chk t.ctx L.sdflow_trainer_copy_ema(t.h, m.h); m)

# ---- ctx functions ----------------------------------------------------------

function rng_normal(ctx::Ctx, n::Integer, d::Integer; stream::Integer = 0, first_index::Integer = 0)
    B = Matrix{Cdouble}(undef, d, n)
    @chk ctx L.sdflow_rng_normal(ctx.h, stream, first_index, n, d, B)
    fromrowmajor(B)
end

for (jl, c) in ((:energy_distance, :sdflow_metric_energy),)
    @eval function $jl(ctx::Ctx, x::AbstractMatrix, y::AbstractMatrix)
        checkcols(y, size(x, 2), "y")
        v, s = Ref{Cdouble}(0), Ref{Cdouble}(0)
        @chk ctx L.$c(ctx.h, size(x, 1), size(y, 1), size(x, 2), rowmajor(x), rowmajor(y), v, s)
        (v[], s[])
    end
end

function mmd2(ctx::Ctx, x::AbstractMatrix, y::AbstractMatrix; bandwidth::Real = 0.0)
    checkcols(y, size(x, 2), "y")
    v, s = Ref{Cdouble}(0), Ref{Cdouble}(0)
    @chk ctx L.sdflow_metric_mmd2(ctx.h, size(x, 1), size(y, 1), size(x, 2), rowmajor(x), rowmajor(y), bandwidth, v, s)
    (v[], s[])
end

function sliced_wasserstein(ctx::Ctx, x::AbstractMatrix, y::AbstractMatrix; p::Real = 2.0, directions::Integer = 128,
                            stream::Integer = 0)
    checkcols(y, size(x, 2), "y")
    v, s = Ref{Cdouble}(0), Ref{Cdouble}(0)
    @chk ctx L.sdflow_metric_sliced_wasserstein(ctx.h, size(x, 1), size(y, 1), size(x, 2), rowmajor(x), rowmajor(y),
                                                p, directions, stream, v, s)
    (v[], s[])
end

"""`assignment(ctx, cost)` -> (perm (1-based), total)."""
function assignment(ctx::Ctx, cost::AbstractMatrix)
    n = size(cost, 1)
    size(cost, 2) == n || throw(DimensionMismatch("cost must be square"))
    perm, tot = zeros(Csize_t, n), Ref{Cdouble}(0)
    @chk ctx L.sdflow_assignment(ctx.h, n, rowmajor(cost), perm, tot)
    (Int.(perm) .+ 1, tot[])
end

"""`coupling_pair(ctx, x0, x1; kind="ot_exact", eps=0.05)` -> (pair (1-based), mean cost)."""
function coupling_pair(ctx::Ctx, x0::AbstractMatrix, x1::AbstractMatrix; kind = "ot_exact", eps::Real = 0.05,
                       stream::Integer = 0, first_index::Integer = 0)
    size(x0) == size(x1) || throw(DimensionMismatch("x0 and x1 must have the same size"))
    n, d = size(x0)
    pair, cost = zeros(Csize_t, n), Ref{Cdouble}(0)
    @chk ctx L.sdflow_coupling_pair(ctx.h, lookup("coupling", L.sdflow_coupling_values, kind), n, d, rowmajor(x0),
                                    rowmajor(x1), eps, stream, first_index, pair, cost)
    (Int.(pair) .+ 1, cost[])
end

CNAME[Ctx] = "ctx"

end # module
