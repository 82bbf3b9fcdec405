//! HPACK's Huffman code (RFC 7541, 5.2 and Appendix B), decoded four bits at a time.
//!
//! The code table is the RFC's. From it we build, once, a state machine over the code tree:
//! one state per inner node (256), and for each state and each 4-bit nibble the state reached,
//! the byte completed on the way (at most one: no code is shorter than 5 bits) and whether the
//! bits read so far may end the string (padding is a prefix of EOS, at most 7 bits). Decoding
//! a string is then two table lookups per input byte, with no branches on single bits.

use std::sync::LazyLock;

/// Why a Huffman-coded string is refused (RFC 7541, 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// Padding longer than 7 bits, or not the most significant bits of EOS.
    Padding,
}

/// (code, length in bits) of every byte value, then EOS (index 256).
#[rustfmt::skip]
pub(super) const CODES: [(u32, u8); 257] = [
    (0x1ff8,13), (0x7fffd8,23), (0xfffffe2,28), (0xfffffe3,28), (0xfffffe4,28), (0xfffffe5,28),
    (0xfffffe6,28), (0xfffffe7,28), (0xfffffe8,28), (0xffffea,24), (0x3ffffffc,30), (0xfffffe9,28),
    (0xfffffea,28), (0x3ffffffd,30), (0xfffffeb,28), (0xfffffec,28), (0xfffffed,28),
    (0xfffffee,28), (0xfffffef,28), (0xffffff0,28), (0xffffff1,28), (0xffffff2,28),
    (0x3ffffffe,30), (0xffffff3,28), (0xffffff4,28), (0xffffff5,28), (0xffffff6,28),
    (0xffffff7,28), (0xffffff8,28), (0xffffff9,28), (0xffffffa,28), (0xffffffb,28), (0x14,6),
    (0x3f8,10), (0x3f9,10), (0xffa,12), (0x1ff9,13), (0x15,6), (0xf8,8), (0x7fa,11), (0x3fa,10),
    (0x3fb,10), (0xf9,8), (0x7fb,11), (0xfa,8), (0x16,6), (0x17,6), (0x18,6), (0x0,5), (0x1,5),
    (0x2,5), (0x19,6), (0x1a,6), (0x1b,6), (0x1c,6), (0x1d,6), (0x1e,6), (0x1f,6), (0x5c,7),
    (0xfb,8), (0x7ffc,15), (0x20,6), (0xffb,12), (0x3fc,10), (0x1ffa,13), (0x21,6), (0x5d,7),
    (0x5e,7), (0x5f,7), (0x60,7), (0x61,7), (0x62,7), (0x63,7), (0x64,7), (0x65,7), (0x66,7),
    (0x67,7), (0x68,7), (0x69,7), (0x6a,7), (0x6b,7), (0x6c,7), (0x6d,7), (0x6e,7), (0x6f,7),
    (0x70,7), (0x71,7), (0x72,7), (0xfc,8), (0x73,7), (0xfd,8), (0x1ffb,13), (0x7fff0,19),
    (0x1ffc,13), (0x3ffc,14), (0x22,6), (0x7ffd,15), (0x3,5), (0x23,6), (0x4,5), (0x24,6), (0x5,5),
    (0x25,6), (0x26,6), (0x27,6), (0x6,5), (0x74,7), (0x75,7), (0x28,6), (0x29,6), (0x2a,6),
    (0x7,5), (0x2b,6), (0x76,7), (0x2c,6), (0x8,5), (0x9,5), (0x2d,6), (0x77,7), (0x78,7),
    (0x79,7), (0x7a,7), (0x7b,7), (0x7ffe,15), (0x7fc,11), (0x3ffd,14), (0x1ffd,13),
    (0xffffffc,28), (0xfffe6,20), (0x3fffd2,22), (0xfffe7,20), (0xfffe8,20), (0x3fffd3,22),
    (0x3fffd4,22), (0x3fffd5,22), (0x7fffd9,23), (0x3fffd6,22), (0x7fffda,23), (0x7fffdb,23),
    (0x7fffdc,23), (0x7fffdd,23), (0x7fffde,23), (0xffffeb,24), (0x7fffdf,23), (0xffffec,24),
    (0xffffed,24), (0x3fffd7,22), (0x7fffe0,23), (0xffffee,24), (0x7fffe1,23), (0x7fffe2,23),
    (0x7fffe3,23), (0x7fffe4,23), (0x1fffdc,21), (0x3fffd8,22), (0x7fffe5,23), (0x3fffd9,22),
    (0x7fffe6,23), (0x7fffe7,23), (0xffffef,24), (0x3fffda,22), (0x1fffdd,21), (0xfffe9,20),
    (0x3fffdb,22), (0x3fffdc,22), (0x7fffe8,23), (0x7fffe9,23), (0x1fffde,21), (0x7fffea,23),
    (0x3fffdd,22), (0x3fffde,22), (0xfffff0,24), (0x1fffdf,21), (0x3fffdf,22), (0x7fffeb,23),
    (0x7fffec,23), (0x1fffe0,21), (0x1fffe1,21), (0x3fffe0,22), (0x1fffe2,21), (0x7fffed,23),
    (0x3fffe1,22), (0x7fffee,23), (0x7fffef,23), (0xfffea,20), (0x3fffe2,22), (0x3fffe3,22),
    (0x3fffe4,22), (0x7ffff0,23), (0x3fffe5,22), (0x3fffe6,22), (0x7ffff1,23), (0x3ffffe0,26),
    (0x3ffffe1,26), (0xfffeb,20), (0x7fff1,19), (0x3fffe7,22), (0x7ffff2,23), (0x3fffe8,22),
    (0x1ffffec,25), (0x3ffffe2,26), (0x3ffffe3,26), (0x3ffffe4,26), (0x7ffffde,27), (0x7ffffdf,27),
    (0x3ffffe5,26), (0xfffff1,24), (0x1ffffed,25), (0x7fff2,19), (0x1fffe3,21), (0x3ffffe6,26),
    (0x7ffffe0,27), (0x7ffffe1,27), (0x3ffffe7,26), (0x7ffffe2,27), (0xfffff2,24), (0x1fffe4,21),
    (0x1fffe5,21), (0x3ffffe8,26), (0x3ffffe9,26), (0xffffffd,28), (0x7ffffe3,27), (0x7ffffe4,27),
    (0x7ffffe5,27), (0xfffec,20), (0xfffff3,24), (0xfffed,20), (0x1fffe6,21), (0x3fffe9,22),
    (0x1fffe7,21), (0x1fffe8,21), (0x7ffff3,23), (0x3fffea,22), (0x3fffeb,22), (0x1ffffee,25),
    (0x1ffffef,25), (0xfffff4,24), (0xfffff5,24), (0x3ffffea,26), (0x7ffff4,23), (0x3ffffeb,26),
    (0x7ffffe6,27), (0x3ffffec,26), (0x3ffffed,26), (0x7ffffe7,27), (0x7ffffe8,27), (0x7ffffe9,27),
    (0x7ffffea,27), (0x7ffffeb,27), (0xffffffe,28), (0x7ffffec,27), (0x7ffffed,27), (0x7ffffee,27),
    (0x7ffffef,27), (0x7fffff0,27), (0x3ffffee,26), (0x3fffffff,30),
];

const EOS: u16 = 256;

/// One step of the machine: where a nibble leads from a state.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    byte: u8,
    flags: u8,
}

/// The step completed a byte.
const EMITS: u8 = 1;
/// The step decoded EOS or left the code tree: the string is invalid.
const FAILS: u8 = 2;
/// The bits after the last completed byte may end the string (valid padding).
const ACCEPTS: u8 = 4;

/// The decoding machine: `steps[state * 16 + nibble]`.
struct Machine {
    steps: Vec<Step>,
}

static MACHINE: LazyLock<Machine> = LazyLock::new(Machine::build);

/// A node of the code tree while it is built: children are inner nodes (by index) or leaves.
#[derive(Clone, Copy)]
enum Child {
    None,
    Inner(u8),
    Leaf(u16),
}

impl Machine {
    fn build() -> Machine {
        // The code tree: inner nodes in creation order, the root first. The code is complete
        // (257 leaves), so there are exactly 256 inner nodes and a state fits a u8.
        let mut tree: Vec<[Child; 2]> = vec![[Child::None; 2]];
        // Per inner node: whether the path to it is all ones and at most 7 bits (EOS padding).
        let mut padding = vec![true];
        for (symbol, &(code, len)) in CODES.iter().enumerate() {
            let mut node = 0usize;
            for depth in (0..len).rev() {
                let bit = ((code >> depth) & 1) as usize;
                if depth == 0 {
                    tree[node][bit] = Child::Leaf(symbol as u16);
                    break;
                }
                node = match tree[node][bit] {
                    Child::Inner(next) => usize::from(next),
                    _ => {
                        let next = tree.len();
                        tree.push([Child::None; 2]);
                        padding.push(padding[node] && bit == 1 && len - depth <= 7);
                        tree[node][bit] = Child::Inner(next as u8);
                        next
                    }
                };
            }
        }
        debug_assert_eq!(tree.len(), 256);
        let mut steps = vec![Step::default(); tree.len() * 16];
        for (state, step) in steps.iter_mut().enumerate() {
            let (mut node, nibble) = (state / 16, state % 16);
            for shift in (0..4).rev() {
                match tree[node][(nibble >> shift) & 1] {
                    Child::Inner(next) => node = usize::from(next),
                    Child::Leaf(EOS) | Child::None => {
                        step.flags = FAILS;
                        break;
                    }
                    Child::Leaf(byte) => {
                        step.byte = byte as u8;
                        step.flags |= EMITS;
                        node = 0;
                    }
                }
            }
            step.next = node as u8;
            if padding[node] {
                step.flags |= ACCEPTS;
            }
        }
        Machine { steps }
    }
}

/// Appends the decoding of the Huffman-coded `coded` to `out`.
pub fn decode(coded: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let steps = &MACHINE.steps;
    let (mut state, mut accepts) = (0usize, true);
    out.reserve(coded.len() * 8 / 5);
    for &octet in coded {
        for nibble in [octet >> 4, octet & 0xf] {
            let step = steps[state * 16 + usize::from(nibble)];
            if step.flags & FAILS != 0 {
                return Err(HuffmanError::Eos);
            }
            if step.flags & EMITS != 0 {
                out.push(step.byte);
            }
            state = usize::from(step.next);
            accepts = step.flags & ACCEPTS != 0;
        }
    }
    if accepts { Ok(()) } else { Err(HuffmanError::Padding) }
}
