"""Recurrent layers: RNN, GRU and LSTM (opset 7, and 14 which added ``layout``).

Concrete semantics follow the ONNX spec as onnxruntime's CPU kernels compute it: gates in the spec's
order (LSTM i, o, f, c; GRU z, r, h), biases ``[Wb, Rb]``, peepholes ``[i, o, f]``; ``clip`` bounds
each gate pre-activation (peephole term included) but not the cell state fed to ``h`` (onnxruntime
does not clip it); LSTM ``input_forget`` couples ``f = 1 - i``; ``sequence_lens`` masks per batch
entry (a reverse direction runs backwards over the first ``len`` steps, steps past ``len`` output
0, final states are those of step ``len - 1``, and GRU/LSTM give zero final states for ``len = 0``);
``layout = 1`` swaps the first two axes of X, initial states and outputs. 16-bit tensors are computed
in float32 and rounded once (onnxruntime casts around its float32 kernels).

The abstract rule runs the same recurrence on full-shape float64 bounds, step by step, keeping bounds
of the value a float execution holds for every input in the boxes (:mod:`ranum.ops._rnn_bounds`):

* a gate pre-activation ``x_t W^T + h R^T + Wb + Rb (+ P c)`` is a sum of products: midpoint,
  radius and a bound of the sum of |terms| (as in :mod:`ranum.ops.linear`) give its real bounds,
  widened by the accumulation error of that many terms in any order
  (:func:`ranum.domain.arith.with_accumulation_error`, with a margin for the separate additions);
* ``clip`` is exact and monotone; activations map bounds with their evaluation error, which covers
  onnxruntime's rational approximations of sigmoid and tanh (:mod:`ranum.ops._rnn_activations`);
* element-wise updates (``c = f c + i g``, ``h = o h(c)``, GRU's ``r h`` and ``(1 - z) h~ + z h``)
  take exact interval products (the GRU update is multilinear: its extremes are at the 8 corners),
  widened by one float rounding per operation of the largest magnitude entering it; a state of a
  16-bit tensor also rounds to its type at each step (onnxruntime keeps float32; others may not);
* where a pre-activation or a state may be non-finite, the batch row's state becomes [-inf, inf]:
  an overflowed sum may turn into NaN later (inf - inf, 0 * inf), which the Overflow hazard reports.

Saturating activations keep states bounded (h in [-1, 1] and |c_t| <= |c_t-1| + 1 with the defaults,
up to the slack), but interval arithmetic does not see cancellations between units, so a state's
bounds may widen from step to step up to what the activations allow (the wrapping effect).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops import _rnn_bounds as bnd
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._rnn_activations import Activation, parse_activations
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["GRU", "GRU7", "LSTM", "LSTM7", "RNN", "RNN7"]

State = tuple[Tensor, ...]
Step = Callable[[State, State], tuple[State, State]]


@dataclass(frozen=True)
class _StateOverflow(Overflow):
    """Overflow read on the first output the node keeps: a model using only Y_h (or Y_c) omits Y.

    Every output sees a non-finite state: the abstract rule turns h (hence Y and Y_h) to [-inf, inf]
    wherever a pre-activation or c may be non-finite."""

    def operand_name(self, inputs, outputs):
        return next((name for name in outputs if name), "")

    def check(self, inputs, outputs):
        return super().check(inputs, _kept(outputs))

    def triggered(self, inputs, outputs):
        return super().triggered(inputs, _kept(outputs))

    def distance(self, inputs, outputs):
        return super().distance(inputs, _kept(outputs))


def _kept(outputs: Sequence) -> list:
    return [next((o for o in outputs if o is not None), None)]


# ----------------------------------------------------------------------------- the time loop
def _schedule(seq: int, batch: int, lengths: Sequence[int] | None, reverse: bool) -> tuple[Tensor, Tensor | None]:
    """Position each batch entry processes at each step ``[seq, batch]``, and the active mask (None: all)."""
    step = torch.arange(seq).unsqueeze(1).expand(seq, batch)
    if lengths is None:
        return (seq - 1 - step if reverse else step), None
    lens = torch.tensor(list(lengths)).unsqueeze(0)
    active = step < lens
    return (torch.where(active, lens - 1 - step, step) if reverse else step), active


def _recur(step: Step, inputs: State, state: State, order: Tensor, active: Tensor | None) -> tuple[State, State]:
    """Run ``step`` over time: ``inputs`` are ``[seq, batch, ...]`` tensors read at each step's position.

    Returns:
        Per output component a ``[seq, batch, hidden]`` tensor in position order (0 past a sequence's
        length), and the final state (the last active step's).
    """
    rows = torch.arange(order.shape[1])
    outputs: list[State] = []
    for k in range(order.shape[0]):
        new_state, out = step(tuple(t[order[k], rows] for t in inputs), state)
        if active is not None:
            on = active[k].unsqueeze(1)
            new_state = tuple(torch.where(on, new, old) for new, old in zip(new_state, state))
            out = tuple(torch.where(on, v, torch.zeros_like(v)) for v in out)
        state = new_state
        outputs.append(out)
    placed = []
    for stacked in (torch.stack(parts) for parts in zip(*outputs)):
        index = order.unsqueeze(2).expand(stacked.shape)
        placed.append(torch.zeros_like(stacked).scatter(0, index, stacked))
    return tuple(placed), state


# ----------------------------------------------------------------------------- the shared rule
@dataclass(frozen=True)
class _Recurrent(OpRule):
    """Attributes, layouts, directions and sequence lengths shared by RNN, GRU and LSTM."""

    activation_alpha: tuple[float, ...] = ()
    activation_beta: tuple[float, ...] = ()
    activations: tuple[str, ...] = ()
    clip: float | None = None
    direction: str = "forward"
    hidden_size: int | None = None
    layout: int = 0

    gates: ClassVar[int] = 1
    default_activations: ClassVar[tuple[str, ...]] = ("Tanh",)
    states: ClassVar[int] = 1  # h (and c for LSTM)
    hazards = (_StateOverflow(),)
    accumulates = True  # a float recurrence: exact inputs take the abstract rule, not a float64 replay

    def __post_init__(self) -> None:
        if self.direction not in ("forward", "reverse", "bidirectional"):
            raise UnsupportedOperator(f"{self.op_type}: unknown direction {self.direction!r}")
        if self.layout not in (0, 1):
            raise UnsupportedOperator(f"{self.op_type}: layout must be 0 or 1, got {self.layout}")
        if self.clip is not None and not self.clip > 0:
            raise UnsupportedOperator(f"{self.op_type}: clip must be a positive threshold, got {self.clip}")

    # ------------------------------------------------------------------ attributes and shapes
    @property
    def _reverses(self) -> tuple[bool, ...]:
        return {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}[self.direction]

    def _activations(self) -> list[tuple[Activation, ...]]:
        return parse_activations(self.op_type, self.activations, self.activation_alpha, self.activation_beta,
                                 self.default_activations, len(self._reverses))

    def _hidden(self, r_shape: Sequence[int]) -> int:
        hidden = int(r_shape[-1])
        if self.hidden_size is not None and int(self.hidden_size) != hidden:
            raise UnsupportedOperator(f"{self.op_type}: hidden_size {self.hidden_size} but R has {hidden} columns")
        if int(r_shape[0]) != len(self._reverses) or int(r_shape[1]) != self.gates * hidden:
            raise UnsupportedOperator(f"{self.op_type}: R has shape {tuple(r_shape)}")
        return hidden

    def _lengths(self, lens: Tensor | Interval | None, seq: int, batch: int) -> list[int] | None:
        """Exact sequence lengths; None when absent or all full."""
        if lens is None:
            return None
        if isinstance(lens, Interval):
            if not lens.is_exact:
                raise UnsupportedOperator(f"{self.op_type}: sequence_lens must be constant, got a range")
            lens = lens.exact_value()
        values = [int(v) for v in lens.reshape(-1).tolist()]
        if len(values) != batch or any(not 0 <= v <= seq for v in values):
            raise UnsupportedOperator(f"{self.op_type}: sequence_lens {values} invalid for {batch} x {seq} steps")
        if self.op_type == "RNN" and 0 in values:
            raise UnsupportedOperator("RNN: a sequence length of 0 (onnxruntime's final state is undefined)")
        return None if all(v == seq for v in values) else values

    def _seq_major(self, t: Tensor) -> Tensor:
        return t.transpose(0, 1) if self.layout else t

    # ------------------------------------------------------------------ per-operator parts
    def _concrete_cell(self, d: int, w: Tensor, r: Tensor, b: Tensor | None, extra: Sequence[Tensor | None],
                       acts: tuple[Activation, ...]) -> tuple[Tensor, Step]:
        """Input weights ``[gates * H, I]`` and the step function of direction ``d``."""
        raise NotImplementedError

    def _abstract_cell(self, d: int, w: Interval, r: Interval, b: Interval | None, extra: Sequence[Interval | None],
                       acts: tuple[Activation, ...], elem_type: int) -> tuple[bnd.Matrix, Step]:
        """Input weight bounds and the step function of direction ``d`` on state bounds ``(lo, hi, ...)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ both semantics
    def _run(self, setup: Callable[[int, tuple[Activation, ...]], tuple[Step, State, State]], seq: int, batch: int,
             lengths: Sequence[int] | None) -> tuple[list[Tensor], list[Tensor]]:
        """Every direction's time loop; ``setup(d, activations)`` gives its step, inputs and initial state.

        Returns:
            Per output component a ``[seq, directions, batch, H]`` tensor, per state component a
            ``[directions, batch, H]`` tensor (sequence-major).
        """
        outs, finals = [], []
        for d, (reverse, acts) in enumerate(zip(self._reverses, self._activations())):
            step, inputs, state = setup(d, acts)
            order, active = _schedule(seq, batch, lengths, reverse)
            out, state = _recur(step, inputs, state, order, active)
            outs.append(out)
            finals.append(_zero_empty(state, lengths))
        return ([torch.stack([o[i] for o in outs], 1) for i in range(len(outs[0]))],
                [torch.stack([f[i] for f in finals]) for i in range(len(finals[0]))])

    def _output_layout(self, t: Tensor) -> Tensor:
        if not self.layout:
            return t
        return t.permute(2, 0, 1, 3) if t.dim() == 4 else t.transpose(0, 1)

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, r: Tensor, b: Tensor | None = None,
                 lens: Tensor | None = None, h0: Tensor | None = None, *extra: Tensor | None) -> tuple[Tensor, ...]:
        work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        xs = self._seq_major(x).to(work)
        seq, batch, hidden = int(xs.shape[0]), int(xs.shape[1]), self._hidden(r.shape)
        initial = ([h0, *extra] + [None] * self.states)[:self.states]
        b, extra = (None if b is None else b.to(work)), [None if e is None else e.to(work) for e in extra]

        def setup(d: int, acts: tuple[Activation, ...]) -> tuple[Step, State, State]:
            weights, step = self._concrete_cell(d, w.to(work), r.to(work), b, extra, acts)
            state = tuple(torch.zeros(batch, hidden, dtype=work) if s is None else self._seq_major(s)[d].to(work)
                          for s in initial)
            return step, (xs @ weights.t(),), state

        outs, finals = self._run(setup, seq, batch, self._lengths(lens, seq, batch))
        return tuple(self._output_layout(t).to(x.dtype) for t in outs + finals)

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, r: Interval, b: Interval | None = None,
                 lens: Interval | None = None, h0: Interval | None = None,
                 *extra: Interval | None) -> tuple[Interval, ...]:
        lo, hi = (self._seq_major(t) for t in x.full())
        seq, batch, hidden = int(lo.shape[0]), int(lo.shape[1]), self._hidden(r.shape)
        initial = ([h0, *extra] + [None] * self.states)[:self.states]
        x_mid, x_rad = bnd.center_radius(lo, hi)

        def setup(d: int, acts: tuple[Activation, ...]) -> tuple[Step, State, State]:
            weights, step = self._abstract_cell(d, w, r, b, extra, acts, x.elem_type)
            state: State = ()
            for s in initial:
                zero = torch.zeros(batch, hidden, dtype=torch.float64)
                state += (zero, zero) if s is None else tuple(self._seq_major(t)[d] for t in s.full())
            return step, tuple(weights.times(x_mid, x_rad)), state

        outs, finals = self._run(setup, seq, batch, self._lengths(lens, seq, batch))
        bounds = [self._output_layout(t) for t in outs + finals]
        return tuple(Interval.from_full(bounds[k], bounds[k + 1], x.elem_type, ctx.budget)
                     for k in range(0, len(bounds), 2))

def _zero_empty(state: State, lengths: Sequence[int] | None) -> State:
    """Final states of empty sequences are 0 (onnxruntime's GRU and LSTM)."""
    if lengths is None or 0 not in lengths:
        return state
    empty = torch.tensor([n == 0 for n in lengths]).unsqueeze(1)
    return tuple(torch.where(empty, torch.zeros_like(s), s) for s in state)


def _split_bias(b: Tensor | None, d: int, rows: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``Wb`` and ``Rb`` (``rows`` each) of direction ``d`` (zeros when B is absent)."""
    if b is None:
        zero = torch.zeros(rows, dtype=dtype)
        return zero, zero
    return b[d, :rows], b[d, rows:]


def _clipped(x: Tensor, clip: float | None) -> Tensor:
    """The ``clip`` attribute: bounds a gate's pre-activation to [-clip, clip]."""
    return x if clip is None else torch.clamp(x, -clip, clip)


# ----------------------------------------------------------------------------- RNN
@register("RNN", since=14)
class RNN(_Recurrent):
    """Simple RNN: ``h = f(clip(x W^T + h R^T + Wb + Rb))`` (default f = Tanh)."""

    def _concrete_cell(self, d: int, w: Tensor, r: Tensor, b: Tensor | None, extra: Sequence[Tensor | None],
                       acts: tuple[Activation, ...]) -> tuple[Tensor, Step]:
        wb, rb = _split_bias(b, d, r.shape[-1], r.dtype)
        bias, rec, (act,) = wb + rb, r[d].t(), acts

        def step(inputs: State, state: State) -> tuple[State, State]:
            h = act.apply(_clipped(inputs[0] + state[0] @ rec + bias, self.clip))
            return (h,), (h,)

        return w[d], step

    def _abstract_cell(self, d: int, w: Interval, r: Interval, b: Interval | None, extra: Sequence[Interval | None],
                       acts: tuple[Activation, ...], elem_type: int) -> tuple[bnd.Matrix, Step]:
        hidden, count = r.shape[-1], w.shape[-1] + r.shape[-1] + bnd.SUM_MARGIN
        rec, bias = bnd.direction_weights(r, d), bnd.plus(*bnd.bias_bounds(b, d, hidden))
        gate = bnd.Gate(count, self.clip, acts[0], elem_type, bnd.work_facts(elem_type))

        def step(inputs: State, state: State) -> tuple[State, State]:
            lo, hi, ok = gate(bnd.plus(bnd.Sum(*inputs), rec.times(*bnd.center_radius(*state)), bias))
            new = bnd.settled((lo, hi), [ok], elem_type)
            return new, new

        return bnd.direction_weights(w, d), step


@register("RNN", since=7)
class RNN7(RNN):
    """RNN before opset 14 (no ``layout``: sequence-major tensors)."""


# ----------------------------------------------------------------------------- GRU
@register("GRU", since=14)
class GRU(_Recurrent):
    """GRU: ``z, r = f(.)``, ``h~ = g(x Wh^T + (r h) Rh^T + Wbh + Rbh)`` (or ``r (h Rh^T + Rbh)`` when
    ``linear_before_reset``), ``h = (1 - z) h~ + z h`` (default f = Sigmoid, g = Tanh)."""

    linear_before_reset: int = 0

    gates = 3
    default_activations = ("Sigmoid", "Tanh")

    def _concrete_cell(self, d: int, w: Tensor, r: Tensor, b: Tensor | None, extra: Sequence[Tensor | None],
                       acts: tuple[Activation, ...]) -> tuple[Tensor, Step]:
        n = r.shape[-1]
        wb, rb = _split_bias(b, d, 3 * n, r.dtype)
        rec_zr, rec_h, bias_zr = r[d, :2 * n].t(), r[d, 2 * n:].t(), wb[:2 * n] + rb[:2 * n]
        (f, g), clip = acts, self.clip

        def step(inputs: State, state: State) -> tuple[State, State]:
            (xw,), (h,) = inputs, state
            zr = xw[:, :2 * n] + h @ rec_zr + bias_zr
            z, reset = f.apply(_clipped(zr[:, :n], clip)), f.apply(_clipped(zr[:, n:], clip))
            if self.linear_before_reset:
                pre = xw[:, 2 * n:] + reset * (h @ rec_h + rb[2 * n:]) + wb[2 * n:]
            else:
                pre = xw[:, 2 * n:] + (reset * h) @ rec_h + wb[2 * n:] + rb[2 * n:]
            h = (1 - z) * g.apply(_clipped(pre, clip)) + z * h
            return (h,), (h,)

        return w[d], step

    def _abstract_cell(self, d: int, w: Interval, r: Interval, b: Interval | None, extra: Sequence[Interval | None],
                       acts: tuple[Activation, ...], elem_type: int) -> tuple[bnd.Matrix, Step]:
        n, facts = r.shape[-1], bnd.work_facts(elem_type)
        count = w.shape[-1] + n + bnd.SUM_MARGIN
        rec_zr, rec_h = bnd.direction_weights(r, d, slice(0, 2 * n)), bnd.direction_weights(r, d, slice(2 * n, None))
        wb, rb = bnd.bias_bounds(b, d, 3 * n)
        bias_zr = bnd.plus(bnd.cols(wb, 0, 2 * n), bnd.cols(rb, 0, 2 * n))
        wbh, rbh = bnd.cols(wb, 2 * n, 3 * n), bnd.cols(rb, 2 * n, 3 * n)
        gate_f, gate_g = (bnd.Gate(count, self.clip, act, elem_type, facts) for act in acts)

        def step(inputs: State, state: State) -> tuple[State, State]:
            h_mid, h_rad = bnd.center_radius(*state)
            x_all = bnd.Sum(*inputs)
            zr = bnd.plus(bnd.cols(x_all, 0, 2 * n), rec_zr.times(h_mid, h_rad), bias_zr)
            z_lo, z_hi, z_ok = gate_f(bnd.cols(zr, 0, n))
            r_lo, r_hi, r_ok = gate_f(bnd.cols(zr, n, 2 * n))
            if self.linear_before_reset:
                lin = bnd.sum_bounds(bnd.plus(rec_h.times(h_mid, h_rad), rbh), count, elem_type)
                pre = bnd.plus(bnd.cols(x_all, 2 * n, 3 * n), bnd.as_sum(*bnd.product(r_lo, r_hi, *lin, facts)), wbh)
            else:
                reset_h = bnd.center_radius(*bnd.product(r_lo, r_hi, *state, facts))
                pre = bnd.plus(bnd.cols(x_all, 2 * n, 3 * n), rec_h.times(*reset_h), wbh, rbh)
            c_lo, c_hi, c_ok = gate_g(pre)
            new = bnd.settled(bnd.gru_update(z_lo, z_hi, c_lo, c_hi, *state, facts), [z_ok, r_ok, c_ok], elem_type)
            return new, new

        return bnd.direction_weights(w, d), step


@register("GRU", since=7)
class GRU7(GRU):
    """GRU before opset 14 (no ``layout``: sequence-major tensors)."""


# ----------------------------------------------------------------------------- LSTM
@register("LSTM", since=14)
class LSTM(_Recurrent):
    """LSTM: ``i, f = f(. + P c)``, ``c = f c + i g(.)``, ``o = f(. + P c)``, ``h = o h(c)`` (default
    f = Sigmoid, g = h = Tanh); ``input_forget`` sets ``f = 1 - i``. Extra inputs: initial_c, P."""

    input_forget: int = 0

    gates = 4
    default_activations = ("Sigmoid", "Tanh", "Tanh")
    states = 2

    def _concrete_cell(self, d: int, w: Tensor, r: Tensor, b: Tensor | None, extra: Sequence[Tensor | None],
                       acts: tuple[Activation, ...]) -> tuple[Tensor, Step]:
        n = r.shape[-1]
        wb, rb = _split_bias(b, d, 4 * n, r.dtype)
        bias, rec, (f_act, g_act, h_act), clip = wb + rb, r[d].t(), acts, self.clip
        peep = extra[1][d] if len(extra) > 1 and extra[1] is not None else None

        def pre(gates: Tensor, k: int, p: int | None, c: Tensor) -> Tensor:
            """Gate ``k``'s pre-activation, plus peephole ``p`` times c, clipped."""
            gate = gates[:, k * n:(k + 1) * n]
            return _clipped(gate if peep is None or p is None else gate + peep[p * n:(p + 1) * n] * c, clip)

        def step(inputs: State, state: State) -> tuple[State, State]:
            (xw,), (h, c) = inputs, state
            gates = xw + h @ rec + bias
            i = f_act.apply(pre(gates, 0, 0, c))
            f = 1 - i if self.input_forget else f_act.apply(pre(gates, 2, 2, c))
            c = f * c + i * g_act.apply(pre(gates, 3, None, c))
            h = f_act.apply(pre(gates, 1, 1, c)) * h_act.apply(c)
            return (h, c), (h,)

        return w[d], step

    def _abstract_cell(self, d: int, w: Interval, r: Interval, b: Interval | None, extra: Sequence[Interval | None],
                       acts: tuple[Activation, ...], elem_type: int) -> tuple[bnd.Matrix, Step]:
        n, facts = r.shape[-1], bnd.work_facts(elem_type)
        count = w.shape[-1] + n + 2 + bnd.SUM_MARGIN  # x W, h R, both biases, the peephole product
        rec, bias = bnd.direction_weights(r, d), bnd.plus(*bnd.bias_bounds(b, d, 4 * n))
        gate_f, gate_g = (bnd.Gate(count, self.clip, act, elem_type, facts) for act in acts[:2])
        h_act = acts[2]
        peep = extra[1] if len(extra) > 1 else None
        p_lo, p_hi = (t[d] for t in peep.full()) if peep is not None else (None, None)

        def pre(total: bnd.Sum, k: int, p: int, c_lo: Tensor, c_hi: Tensor) -> bnd.Sum:
            """Gate ``k``'s pre-activation, plus peephole ``p`` times c."""
            gate = bnd.cols(total, k * n, (k + 1) * n)
            if p_lo is None:
                return gate
            lo, hi, size = bnd.times(p_lo[p * n:(p + 1) * n], p_hi[p * n:(p + 1) * n], c_lo, c_hi)
            return bnd.plus(gate, bnd.Sum(*bnd.center_radius(lo, hi), size))

        def step(inputs: State, state: State) -> tuple[State, State]:
            h_lo, h_hi, c_lo, c_hi = state
            total = bnd.plus(bnd.Sum(*inputs), rec.times(*bnd.center_radius(h_lo, h_hi)), bias)
            i_lo, i_hi, i_ok = gate_f(pre(total, 0, 0, c_lo, c_hi))
            if self.input_forget:
                f_lo, f_hi = bnd.rounded(1 - i_hi, 1 - i_lo, 1 + bnd.magnitude(i_lo, i_hi), 1, facts)
                f_ok = i_ok
            else:
                f_lo, f_hi, f_ok = gate_f(pre(total, 2, 2, c_lo, c_hi))
            g_lo, g_hi, g_ok = gate_g(bnd.cols(total, 3 * n, 4 * n))
            fc_lo, fc_hi, fc_size = bnd.times(f_lo, f_hi, c_lo, c_hi)
            ig_lo, ig_hi, ig_size = bnd.times(i_lo, i_hi, g_lo, g_hi)
            c_lo, c_hi = bnd.rounded(fc_lo + ig_lo, fc_hi + ig_hi, fc_size + ig_size, 3, facts)
            o_lo, o_hi, o_ok = gate_f(pre(total, 1, 1, c_lo, c_hi))
            h_lo, h_hi = bnd.product(o_lo, o_hi, *h_act.bounds(c_lo, c_hi, facts), facts)
            new = bnd.settled((h_lo, h_hi, c_lo, c_hi), [i_ok, f_ok, g_ok, o_ok], elem_type)
            return new, new[:2]

        return bnd.direction_weights(w, d), step


@register("LSTM", since=7)
class LSTM7(LSTM):
    """LSTM before opset 14 (no ``layout``: sequence-major tensors)."""
