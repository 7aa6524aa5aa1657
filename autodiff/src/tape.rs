//! The tape, its nodes, and `Var`: a tensor value plus its place on a tape.

use ebm_core::{DType, Tensor};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A derivative rule: given the output's cotangent `g`, the op's inputs and its output (all as
/// `Var`s on the tape), and which inputs need a cotangent in this sweep, return each input's
/// cotangent (`None` where it is not needed or has none). Skipping unneeded inputs is what makes
/// absent gradients free: the parameter gradient of a matmul is never formed when only the
/// input gradient (a score) was asked for.
///
/// Rules are written in `Var` ops, so with `create_graph` the backward pass is recorded like any
/// other computation and can be differentiated again, to any order.
pub type BackwardFn = dyn Fn(&Var, &[Var], &Var, &[bool]) -> Vec<Option<Var>>;

pub(crate) struct Node {
    pub(crate) value: Tensor,
    /// Tape ids of the inputs; `None` for an untracked input (a constant).
    pub(crate) parents: Vec<Option<usize>>,
    /// The input values, kept so the rule can be handed its inputs as `Var`s.
    pub(crate) parent_values: Vec<Tensor>,
    pub(crate) backward: Option<Rc<BackwardFn>>,
}

pub(crate) struct TapeInner {
    pub(crate) nodes: RefCell<Vec<Node>>,
    pub(crate) grad_enabled: Cell<bool>,
}

/// A record of the computation, in creation order. Create one per training step or sampler
/// step; dropping it (and its `Var`s) frees everything it recorded.
#[derive(Clone)]
pub struct Tape {
    pub(crate) inner: Rc<TapeInner>,
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    /// An empty tape, recording.
    pub fn new() -> Tape {
        Tape {
            inner: Rc::new(TapeInner {
                nodes: RefCell::new(Vec::new()),
                grad_enabled: Cell::new(true),
            }),
        }
    }

    /// A differentiable input (a leaf): gradients can be taken with respect to it.
    pub fn var(&self, value: Tensor) -> Var {
        let id = self.push(Node {
            value: value.clone(),
            parents: Vec::new(),
            parent_values: Vec::new(),
            backward: None,
        });
        Var {
            tape: self.clone(),
            id: Some(id),
            value,
        }
    }

    /// A constant: never tracked, costs nothing in backward passes.
    pub fn constant(&self, value: Tensor) -> Var {
        Var {
            tape: self.clone(),
            id: None,
            value,
        }
    }

    /// A constant filled with `value`.
    pub fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Var {
        self.constant(Tensor::full(shape, value, dtype))
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.inner.nodes.borrow().len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether ops are being recorded (false inside [`Tape::no_grad`]).
    pub fn grad_enabled(&self) -> bool {
        self.inner.grad_enabled.get()
    }

    /// Runs `f` with recording switched off: every `Var` it creates is a constant.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        self.with_grad_enabled(false, f)
    }

    pub(crate) fn with_grad_enabled<R>(&self, on: bool, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let cell = &self.inner.grad_enabled;
        let _restore = Restore(cell, cell.replace(on));
        f()
    }

    fn push(&self, node: Node) -> usize {
        let mut nodes = self.inner.nodes.borrow_mut();
        nodes.push(node);
        nodes.len() - 1
    }

    pub(crate) fn same(&self, other: &Tape) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Records `value = op(inputs)` with its derivative rule. If recording is off or no input is
    /// tracked, the result is a constant and nothing is stored.
    pub fn record(
        &self,
        value: Tensor,
        inputs: &[&Var],
        backward: impl Fn(&Var, &[Var], &Var, &[bool]) -> Vec<Option<Var>> + 'static,
    ) -> Var {
        for v in inputs {
            assert!(
                self.same(&v.tape),
                "an op mixed Vars from two different tapes"
            );
        }
        if !self.grad_enabled() || inputs.iter().all(|v| v.id.is_none()) {
            return self.constant(value);
        }
        let id = self.push(Node {
            value: value.clone(),
            parents: inputs.iter().map(|v| v.id).collect(),
            parent_values: inputs.iter().map(|v| v.value.clone()).collect(),
            backward: Some(Rc::new(backward)),
        });
        Var {
            tape: self.clone(),
            id: Some(id),
            value,
        }
    }
}

/// A tensor value on a tape. Cheap to clone. Ops on `Var`s are recorded on their tape.
#[derive(Clone)]
pub struct Var {
    pub(crate) tape: Tape,
    pub(crate) id: Option<usize>,
    pub(crate) value: Tensor,
}

impl Var {
    /// The current value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The value's shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The value's number of axes.
    pub fn rank(&self) -> usize {
        self.value.rank()
    }

    /// The value's element type.
    pub fn dtype(&self) -> DType {
        self.value.dtype()
    }

    /// The value's number of elements.
    pub fn numel(&self) -> usize {
        self.value.numel()
    }

    /// The tape this Var is recorded on.
    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    /// Whether gradients flow through this Var.
    pub fn is_tracked(&self) -> bool {
        self.id.is_some()
    }

    /// The same value as a constant: gradients stop here.
    pub fn detach(&self) -> Var {
        self.tape.constant(self.value.clone())
    }

    /// A constant on the same tape.
    pub fn constant(&self, value: Tensor) -> Var {
        self.tape.constant(value)
    }

    /// The value of a one-element Var.
    pub fn item(&self) -> f64 {
        self.value.item()
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(id={:?}, {:?})", self.id, self.value)
    }
}
