//! The little of llama.cpp's C API that `calibrate` needs (through `llama-cpp-sys-2`, which
//! builds llama.cpp with cmake and generates the bindings): load a model, tokenize, evaluate a
//! chunk with an evaluation callback that hands every collected multiplication's input rows to
//! the [`Collector`]. Every pointer is owned by one value here and freed on drop.

use std::ffi::{c_char, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, Once};

use llama_cpp_sys_2 as sys;

use super::collector::Collector;
use crate::error::{Error, Result};

/// llama.cpp's error messages since the last [`take_log`] (its other messages are dropped).
static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_log(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if level == sys::GGML_LOG_LEVEL_ERROR && !text.is_null() {
        // SAFETY: llama.cpp passes a NUL-terminated message.
        let s = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .trim()
            .to_string();
        if let Ok(mut v) = ERRORS.lock() {
            if v.len() < 20 && !s.is_empty() {
                v.push(s);
            }
        }
    }
}

/// llama.cpp's error messages since the last call, joined (empty when none).
fn take_log() -> String {
    ERRORS
        .lock()
        .map(|mut v| std::mem::take(&mut *v).join("; "))
        .unwrap_or_default()
}

/// The llama.cpp library, initialised once per process.
pub struct Llama(());

impl Llama {
    pub fn init() -> Llama {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            // SAFETY: plain initialisation calls; the callback is a static function.
            unsafe {
                sys::llama_log_set(Some(on_log), std::ptr::null_mut());
                sys::llama_backend_init();
            }
        });
        Llama(())
    }
}

/// A loaded model (memory-mapped by llama.cpp, on the CPU).
pub struct LlamaModel<'l> {
    ptr: *mut sys::llama_model,
    _llama: PhantomData<&'l Llama>,
}

impl Drop for LlamaModel<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from llama_model_load_from_file and is freed once.
        unsafe { sys::llama_model_free(self.ptr) }
    }
}

impl<'l> LlamaModel<'l> {
    pub fn load(_: &'l Llama, path: &Path) -> Result<Self> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Calibrate(format!("{}: a path with a NUL byte", path.display())))?;
        take_log();
        // SAFETY: default parameters and a valid C string.
        let ptr = unsafe {
            let mut params = sys::llama_model_default_params();
            params.n_gpu_layers = 0;
            sys::llama_model_load_from_file(c.as_ptr(), params)
        };
        if ptr.is_null() {
            return Err(Error::Calibrate(format!(
                "llama.cpp could not load {}: {}",
                path.display(),
                take_log()
            )));
        }
        Ok(LlamaModel {
            ptr,
            _llama: PhantomData,
        })
    }

    fn vocab(&self) -> *const sys::llama_vocab {
        // SAFETY: a live model.
        unsafe { sys::llama_model_get_vocab(self.ptr) }
    }

    /// The text as llama-imatrix tokenizes it: special tokens added, not parsed in the text.
    pub fn tokenize(&self, text: &str) -> Result<Vec<sys::llama_token>> {
        let len = i32::try_from(text.len())
            .map_err(|_| Error::Calibrate("the calibration text is above 2 GiB".into()))?;
        let tokenize = |out: &mut [sys::llama_token]| {
            // SAFETY: `text` is `len` bytes; `out` has room for `out.len()` tokens.
            unsafe {
                sys::llama_tokenize(
                    self.vocab(),
                    text.as_ptr().cast(),
                    len,
                    out.as_mut_ptr(),
                    out.len() as i32,
                    true,
                    false,
                )
            }
        };
        // A negative result is the number of tokens needed.
        let n = tokenize(&mut []);
        let needed = if n < 0 {
            n.unsigned_abs() as usize
        } else {
            n as usize
        };
        let mut tokens = vec![0; needed];
        let got = tokenize(&mut tokens);
        if got < 0 || got as usize != needed {
            return Err(Error::Calibrate(format!(
                "llama.cpp tokenized the text to {got} tokens after announcing {needed}"
            )));
        }
        Ok(tokens)
    }

    /// The BOS token, when the model's tokenizer adds one.
    pub fn bos_if_added(&self) -> Option<sys::llama_token> {
        // SAFETY: a live vocabulary.
        unsafe {
            sys::llama_vocab_get_add_bos(self.vocab()).then(|| sys::llama_vocab_bos(self.vocab()))
        }
    }

    /// A context evaluating chunks of `n_ctx` tokens (one batch, one micro-batch each) whose
    /// multiplications feed `collector`.
    pub fn context(
        &self,
        n_ctx: usize,
        threads: usize,
        collector: Collector,
    ) -> Result<LlamaContext<'_, 'l>> {
        let mut state = Box::new(CallbackState {
            collector,
            error: None,
            scratch: Vec::new(),
        });
        let n = u32::try_from(n_ctx)
            .map_err(|_| Error::Usage(format!("--ctx {n_ctx} is too large")))?;
        take_log();
        // SAFETY: default parameters; the callback's user data is the boxed state, which
        // lives (at a fixed address) as long as the context.
        let ptr = unsafe {
            let mut p = sys::llama_context_default_params();
            p.n_ctx = n;
            p.n_batch = n;
            p.n_ubatch = n;
            p.n_seq_max = 1;
            p.n_threads = threads as i32;
            p.n_threads_batch = threads as i32;
            p.no_perf = true;
            p.embeddings = false;
            p.cb_eval = Some(on_tensor);
            p.cb_eval_user_data = (&mut *state as *mut CallbackState).cast();
            sys::llama_init_from_model(self.ptr, p)
        };
        if ptr.is_null() {
            return Err(Error::Calibrate(format!(
                "llama.cpp could not make a context of {n_ctx} tokens: {}",
                take_log()
            )));
        }
        // SAFETY: tokens only, one sequence.
        let batch = unsafe { sys::llama_batch_init(n as i32, 0, 1) };
        Ok(LlamaContext {
            ptr,
            batch,
            capacity: n_ctx,
            state,
            _model: PhantomData,
        })
    }
}

/// What the evaluation callback works on.
struct CallbackState {
    collector: Collector,
    /// The first error the callback met; evaluation stops there.
    error: Option<Error>,
    /// Activation rows gathered contiguous.
    scratch: Vec<f32>,
}

/// A context with its batch; dropped before its model.
pub struct LlamaContext<'m, 'l> {
    ptr: *mut sys::llama_context,
    batch: sys::llama_batch,
    capacity: usize,
    state: Box<CallbackState>,
    _model: PhantomData<&'m LlamaModel<'l>>,
}

impl Drop for LlamaContext<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: both came from llama.cpp and are freed once, the batch first.
        unsafe {
            sys::llama_batch_free(self.batch);
            sys::llama_free(self.ptr);
        }
    }
}

impl LlamaContext<'_, '_> {
    /// Evaluates one chunk from an empty cache, every token an output (as llama-imatrix does,
    /// so the last block computes every token).
    pub fn eval_chunk(&mut self, tokens: &[sys::llama_token]) -> Result<()> {
        if tokens.len() > self.capacity {
            return Err(Error::Calibrate(format!(
                "a chunk of {} tokens in a context of {}",
                tokens.len(),
                self.capacity
            )));
        }
        // SAFETY: the batch has room for `capacity` tokens with one sequence id each.
        unsafe {
            sys::llama_memory_clear(sys::llama_get_memory(self.ptr), true);
            let b = &mut self.batch;
            for (i, &t) in tokens.iter().enumerate() {
                *b.token.add(i) = t;
                *b.pos.add(i) = i as sys::llama_pos;
                *b.n_seq_id.add(i) = 1;
                *(*b.seq_id.add(i)) = 0;
                *b.logits.add(i) = 1;
            }
            b.n_tokens = tokens.len() as i32;
        }
        take_log();
        // SAFETY: a live context and a filled batch.
        let rc = unsafe { sys::llama_decode(self.ptr, self.batch) };
        if let Some(e) = self.state.error.take() {
            return Err(e);
        }
        if rc != 0 {
            return Err(Error::Calibrate(format!(
                "llama_decode failed ({rc}): {}",
                take_log()
            )));
        }
        Ok(())
    }

    /// The collector, with everything the chunks added (the context is freed on drop).
    pub fn into_collector(mut self) -> Collector {
        std::mem::take(&mut self.state.collector)
    }
}

/// The weight's name as llama-imatrix filters it: the part between the first two `#` when
/// the scheduler decorated it, else the whole name.
fn weight_name(raw: &[c_char; 64]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let s = String::from_utf8_lossy(&bytes).into_owned();
    match s.split_once('#') {
        Some((_, rest)) => rest.split('#').next().unwrap_or("").to_string(),
        None => s,
    }
}

/// ggml's evaluation callback: with `ask`, whether this node's data is wanted (matrix
/// multiplications of block weights by at least 16 f32 rows, as llama-imatrix); then, for each
/// wanted node, its input rows go to the collector.
unsafe extern "C" fn on_tensor(t: *mut sys::ggml_tensor, ask: bool, user: *mut c_void) -> bool {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: ggml passes a live node and our boxed state.
        let (t, state) = unsafe { (&*t, &mut *(user as *mut CallbackState)) };
        if t.op != sys::GGML_OP_MUL_MAT && t.op != sys::GGML_OP_MUL_MAT_ID {
            return !ask;
        }
        let (src0, src1) = (t.src[0], t.src[1]);
        if src0.is_null() || src1.is_null() {
            return !ask;
        }
        // SAFETY: non-null sources of a live node.
        let (src0, src1) = unsafe { (&*src0, &*src1) };
        let name = weight_name(&src0.name);
        if ask {
            if t.op == sys::GGML_OP_MUL_MAT_ID {
                // Refused before evaluation; never collected.
                return false;
            }
            return src1.ne[1] >= 16 && src1.type_ == sys::GGML_TYPE_F32 && Collector::wants(&name);
        }
        if state.error.is_some() {
            return false;
        }
        match gather_rows(src1, &mut state.scratch)
            .and_then(|n| state.collector.add(&name, n, &state.scratch))
        {
            Ok(()) => true,
            Err(e) => {
                state.error = Some(e);
                false
            }
        }
    }));
    match result {
        Ok(keep_going) => keep_going,
        Err(_) => {
            // SAFETY: as above; a panic left the state as it was.
            let state = unsafe { &mut *(user as *mut CallbackState) };
            state.error = Some(Error::Calibrate("the evaluation callback panicked".into()));
            false
        }
    }
}

/// Copies every row of `src1` (f32, any strides, host or device memory) into `out`, row after
/// row; returns the row width.
fn gather_rows(src1: &sys::ggml_tensor, out: &mut Vec<f32>) -> Result<usize> {
    let ne = src1.ne.map(|v| v.max(0) as usize);
    let nb = src1.nb;
    if nb[0] != 4 {
        return Err(Error::Calibrate(format!(
            "an activation with element stride {} (not f32 contiguous rows)",
            nb[0]
        )));
    }
    let n = ne[0];
    // SAFETY: a live tensor; its buffer is asked whether it lives in host memory.
    let host = unsafe { sys::ggml_backend_buffer_is_host(src1.buffer) };
    let mut owned: Vec<u8> = Vec::new();
    let base: *const u8 = if host {
        src1.data as *const u8
    } else {
        // The byte extent of the strided tensor.
        let extent = (0..4).map(|d| (ne[d].max(1) - 1) * nb[d]).sum::<usize>() + 4;
        owned.resize(extent, 0);
        // SAFETY: `owned` holds `extent` bytes, the tensor's whole extent.
        unsafe { sys::ggml_backend_tensor_get(src1, owned.as_mut_ptr().cast(), 0, extent) };
        owned.as_ptr()
    };
    out.clear();
    out.reserve(n * ne[1] * ne[2] * ne[3]);
    for i3 in 0..ne[3] {
        for i2 in 0..ne[2] {
            for i1 in 0..ne[1] {
                let off = i1 * nb[1] + i2 * nb[2] + i3 * nb[3];
                // SAFETY: row (i1, i2, i3) lies inside the tensor: `n` f32 from `off`.
                let row = unsafe { std::slice::from_raw_parts(base.add(off) as *const f32, n) };
                out.extend_from_slice(row);
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> [c_char; 64] {
        let mut r = [0 as c_char; 64];
        for (i, b) in s.bytes().enumerate() {
            r[i] = b as c_char;
        }
        r
    }

    #[test]
    fn names_are_filtered_as_llama_imatrix_filters_them() {
        assert_eq!(
            weight_name(&raw("blk.0.ffn_down.weight")),
            "blk.0.ffn_down.weight"
        );
        assert_eq!(
            weight_name(&raw("CPU#blk.3.ffn_up.weight#0")),
            "blk.3.ffn_up.weight"
        );
        assert_eq!(
            weight_name(&raw("x#blk.1.attn_q.weight")),
            "blk.1.attn_q.weight"
        );
    }
}
