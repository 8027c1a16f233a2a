//! Lets aya 0.14 load a program that calls the conntrack kfuncs. Drop this module once aya
//! 0.16 (which resolves kfunc calls and module BTF itself) is usable.
//!
//! rustc + bpf-linker compile a call to an `extern "C"` function into `call -1` with
//! src_reg = BPF_PSEUDO_CALL (1) and an R_BPF_64_32 relocation against an *undefined*
//! symbol; aya-obj 0.3 takes every src_reg = 1 call for a BPF-to-BPF call and fails. So,
//! before `EbpfLoader::load`, [`patch_kfunc_calls`] rewrites those calls in the ELF bytes:
//! into kfunc calls (src_reg = BPF_PSEUDO_KFUNC_CALL, off = 0: vmlinux BTF, imm = the
//! function's BTF id) when the kernel's vmlinux BTF has every kfunc, else into `r0 = 0`.
//! Even dead code must name a function the kernel has (the verifier resolves every kfunc
//! call before it looks for dead code), so there is no other way to load the program on a
//! kernel without them (nf_conntrack built as a module keeps its kfuncs in module BTF,
//! which needs an fd_array aya 0.14 cannot pass); `CT_MODE_OFF` then keeps the program off
//! that code, and conntrack rules are left to netfilter as before.
//!
//! The loader also reads the offset of `nf_conn.status` from BTF: the program gets it as a
//! read-only global, which the verifier needs constant.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};
use object::elf::{FileHeader64, Rel64, EM_BPF, SHF_EXECINSTR, SHN_UNDEF, SHT_REL, SHT_SYMTAB};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{LittleEndian as LE, SectionIndex, SymbolIndex};

/// The kfuncs the program calls (firewall-ebpf/src/ct.rs).
pub const CONNTRACK_KFUNCS: [&str; 2] = ["bpf_xdp_ct_lookup", "bpf_ct_release"];

const BPF_CALL_INSN: u8 = 0x85; // BPF_JMP | BPF_CALL | BPF_K
const BPF_MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_PSEUDO_CALL: u8 = 1;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const R_BPF_64_32: u32 = 10;
const REL64_SIZE: usize = 16;
const SHDR_SH_SIZE: usize = 32; // offset of sh_size in an Elf64_Shdr

/// What becomes of each call to an undefined function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kfuncs {
    /// A kfunc call to these vmlinux BTF ids, by name.
    Ids(HashMap<String, u32>),
    /// `r0 = 0`: the kernel has none of them, and the program never reaches the calls.
    Stubbed,
}

/// Rewrites every call that relocates against an undefined symbol and drops those
/// relocations; returns how many calls it rewrote. Anything unexpected (another
/// relocation type, a non-call instruction, an unknown name) is an error, not a silently
/// broken program.
pub fn patch_kfunc_calls(elf: &mut [u8], kfuncs: &Kfuncs) -> Result<usize> {
    let e = LE;
    let mut insn_patches: Vec<(usize, Option<u32>)> = Vec::new(); // (file offset, BTF id)
    let mut rel_rewrites: Vec<(usize, Vec<Rel64<LE>>, usize)> = Vec::new(); // (data, kept, shdr)
    {
        let data: &[u8] = elf;
        let hdr = FileHeader64::<LE>::parse(data).context("not a 64-bit little-endian ELF")?;
        ensure!(hdr.e_machine(e) == EM_BPF, "not a BPF object");
        let sections = hdr.sections(e, data)?;
        let symtab = sections.symbols(e, data, SHT_SYMTAB)?;
        for (idx, rel_sh) in sections.iter().enumerate() {
            if rel_sh.sh_type(e) != SHT_REL {
                continue;
            }
            let target = sections.section(SectionIndex(rel_sh.sh_info(e) as usize))?;
            if target.sh_flags(e) & u64::from(SHF_EXECINSTR) == 0 {
                continue; // only code calls kfuncs
            }
            let rels: &[Rel64<LE>] = rel_sh.data_as_array(e, data)?;
            let mut kept = Vec::with_capacity(rels.len());
            for rel in rels {
                let sym = symtab.symbol(SymbolIndex(rel.r_sym(e) as usize))?;
                if sym.st_shndx(e) != SHN_UNDEF || sym.st_name(e) == 0 {
                    kept.push(*rel); // maps, globals, calls within the object: aya's
                    continue;
                }
                let name = std::str::from_utf8(sym.name(e, symtab.strings())?)?;
                if rel.r_type(e) != R_BPF_64_32 {
                    bail!(
                        "relocation type {} against `{name}`: only calls are supported",
                        rel.r_type(e)
                    );
                }
                let off = usize::try_from(target.sh_offset(e) + rel.r_offset.get(e))?;
                let insn = data
                    .get(off..off + 8)
                    .context("relocation outside its section")?;
                ensure!(
                    insn[0] == BPF_CALL_INSN && insn[1] == BPF_PSEUDO_CALL << 4,
                    "relocation against `{name}` is not on a call ({insn:02x?})"
                );
                let id = match kfuncs {
                    Kfuncs::Ids(ids) => Some(
                        *ids.get(name)
                            .with_context(|| format!("no BTF id for kfunc `{name}`"))?,
                    ),
                    Kfuncs::Stubbed => None,
                };
                insn_patches.push((off, id));
            }
            if kept.len() != rels.len() {
                let shdr = usize::try_from(hdr.e_shoff(e))? + idx * usize::from(hdr.e_shentsize(e));
                rel_rewrites.push((usize::try_from(rel_sh.sh_offset(e))?, kept, shdr));
            }
        }
    }
    let patched = insn_patches.len();
    for (off, id) in insn_patches {
        let insn: [u8; 8] = match id {
            // dst_reg = 0, src_reg = 2, off = 0 (vmlinux BTF), imm = BTF id.
            Some(id) => {
                let [a, b, c, d] = id.to_le_bytes();
                [BPF_CALL_INSN, BPF_PSEUDO_KFUNC_CALL << 4, 0, 0, a, b, c, d]
            }
            // r0 = 0: what a lookup miss returns, should it ever run.
            None => [BPF_MOV64_IMM, 0, 0, 0, 0, 0, 0, 0],
        };
        elf[off..off + 8].copy_from_slice(&insn);
    }
    // Compact each touched relocation table and shrink its sh_size: the dropped entries
    // stop existing for aya (stale bytes past the new size are never read).
    for (data_off, kept, shdr) in rel_rewrites {
        for (i, rel) in kept.iter().enumerate() {
            let at = data_off + i * REL64_SIZE;
            elf[at..at + 8].copy_from_slice(&rel.r_offset.get(e).to_le_bytes());
            elf[at + 8..at + 16].copy_from_slice(&rel.r_info.get(e).to_le_bytes());
        }
        let size = (kept.len() * REL64_SIZE) as u64;
        elf[shdr + SHDR_SH_SIZE..shdr + SHDR_SH_SIZE + 8].copy_from_slice(&size.to_le_bytes());
    }
    Ok(patched)
}

/// What the program needs from the kernel's BTF for conntrack lookups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conntrack {
    pub kfuncs: HashMap<String, u32>,
    /// Byte offset of `nf_conn.status` (8 bytes).
    pub status_offset: u32,
}

/// The conntrack kfuncs and `nf_conn.status` in vmlinux BTF, or why they cannot be used.
pub fn conntrack_support(btf: &[u8]) -> Result<Conntrack> {
    let btf = KernelBtf::parse(btf)?;
    let mut kfuncs = HashMap::new();
    for name in CONNTRACK_KFUNCS {
        let id = btf
            .func_id(name)
            .with_context(|| format!("vmlinux BTF has no {name} (nf_conntrack a module?)"))?;
        kfuncs.insert(name.to_string(), id);
    }
    let status = btf
        .member("nf_conn", "status")
        .context("vmlinux BTF has no nf_conn.status")?;
    ensure!(
        status.1 == 8,
        "nf_conn.status is {} bytes, expected 8",
        status.1
    );
    Ok(Conntrack {
        kfuncs,
        status_offset: status.0,
    })
}

/// Where the conntrack destination filter's netfilter program reads (firewall-common
/// `CT_SEEN_CTL_*`): byte offsets in this kernel's structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtSeenOffsets {
    /// `sk_buff._nfct`: the entry's address, ctinfo in the low 3 bits.
    pub skb_nfct: u32,
    /// `nf_conn.status`.
    pub status: u32,
    /// The `dst` of the original and of the reply tuple in `nf_conn`.
    pub tuple_dst: [u32; 2],
}

/// The offsets the filter's program needs, from vmlinux BTF, or why it cannot run here.
pub fn ct_seen_offsets(btf: &[u8]) -> Result<CtSeenOffsets> {
    let btf = KernelBtf::parse(btf)?;
    let member = |strukt: &str, name: &str| {
        btf.member(strukt, name)
            .with_context(|| format!("vmlinux BTF has no {strukt}.{name}"))
    };
    let nfct = member("sk_buff", "_nfct")?;
    ensure!(nfct.1 == 8, "sk_buff._nfct is {} bytes, expected 8", nfct.1);
    let status = member("nf_conn", "status")?;
    ensure!(
        status.1 == 8,
        "nf_conn.status is {} bytes, expected 8",
        status.1
    );
    let (hashes, hashes_size) = member("nf_conn", "tuplehash")?;
    let (tuple, _) = member("nf_conntrack_tuple_hash", "tuple")?;
    let (dst, dst_size) = member("nf_conntrack_tuple", "dst")?;
    // Address (16), port or ICMP type and code (2), protocol number (1), direction (1):
    // the layout the program reads.
    ensure!(
        dst_size == 20,
        "nf_conntrack_tuple.dst is {dst_size} bytes, expected 20"
    );
    let per_direction = hashes_size / 2;
    Ok(CtSeenOffsets {
        skb_nfct: nfct.0,
        status: status.0,
        tuple_dst: [0, 1].map(|dir| hashes + dir * per_direction + tuple + dst),
    })
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_FUNC: u32 = 12;
const KIND_ENUM64: u32 = 19;

/// Just enough of a BTF reader for FUNC ids and struct member offsets: aya 0.14 keeps its
/// member iteration private. Every read is bounds-checked (the data is the kernel's, but
/// a malformed blob must be an error, not a panic).
struct KernelBtf<'a> {
    data: &'a [u8],
    strings: usize,
    /// Byte offset of each type by BTF id (id 0 = void).
    types: Vec<usize>,
    by_name: HashMap<(&'a str, u32), u32>,
}

impl<'a> KernelBtf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self> {
        ensure!(
            data.get(0..2) == Some(&[0x9f, 0xeb]),
            "not little-endian BTF"
        );
        let u = |o: usize| read_u32(data, o).map(|v| v as usize);
        let (hdr_len, type_off, type_len, str_off) = (u(4)?, u(8)?, u(12)?, u(16)?);
        let start = hdr_len + type_off;
        let end = start + type_len;
        let mut btf = Self {
            data,
            strings: hdr_len + str_off,
            types: vec![0],
            by_name: HashMap::new(),
        };
        let mut off = start;
        while off < end {
            let (name_off, info) = (u(off)?, u(off + 4)? as u32);
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let id = btf.types.len() as u32;
            btf.types.push(off);
            let name = cstr(data, btf.strings + name_off);
            if !name.is_empty() {
                btf.by_name.entry((name, kind)).or_insert(id);
            }
            off += 12
                + match kind {
                    1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                    3 => 12,                      // ARRAY
                    4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                    6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                    2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF.., FUNC, FLOAT, TYPE_TAG
                    k => bail!("unknown BTF kind {k} at type {id}"),
                };
        }
        Ok(btf)
    }

    fn u32_at(&self, o: usize) -> Option<u32> {
        read_u32(self.data, o).ok()
    }

    fn func_id(&self, name: &str) -> Option<u32> {
        self.by_name.get(&(name, KIND_FUNC)).copied()
    }

    /// (byte offset, size) of `strukt.member`, looking through anonymous members.
    /// Bitfields are refused: a plain load cannot read them.
    fn member(&self, strukt: &str, member: &str) -> Option<(u32, u32)> {
        let id = *self.by_name.get(&(strukt, KIND_STRUCT))?;
        self.find_member(id, member, 0, 0)
    }

    fn find_member(&self, id: u32, member: &str, base_bits: u32, depth: u32) -> Option<(u32, u32)> {
        let t = *self.types.get(id as usize)?;
        let info = self.u32_at(t + 4)?;
        let (kind, vlen, kflag) = ((info >> 24) & 0x1f, info & 0xffff, info >> 31);
        if (kind != KIND_STRUCT && kind != KIND_UNION) || depth > 8 {
            return None;
        }
        for i in 0..vlen as usize {
            let m = t + 12 + 12 * i;
            let (name_off, ty, raw) = (self.u32_at(m)?, self.u32_at(m + 4)?, self.u32_at(m + 8)?);
            let (bits, bitfield) = if kflag == 1 {
                (raw & 0xff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            let name = cstr(self.data, self.strings + name_off as usize);
            let at = base_bits + bits;
            if name == member && bitfield == 0 && at.is_multiple_of(8) {
                return Some((at / 8, self.size_of(ty)?));
            }
            if name.is_empty() {
                if let Some(found) = self.find_member(self.skip_mods(ty)?, member, at, depth + 1) {
                    return Some(found);
                }
            }
        }
        None
    }

    fn kind(&self, id: u32) -> Option<u32> {
        Some((self.u32_at(*self.types.get(id as usize)? + 4)? >> 24) & 0x1f)
    }

    fn skip_mods(&self, mut id: u32) -> Option<u32> {
        for _ in 0..16 {
            match self.kind(id)? {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST => {
                    id = self.u32_at(*self.types.get(id as usize)? + 8)?
                }
                _ => return Some(id),
            }
        }
        None
    }

    fn size_of(&self, id: u32) -> Option<u32> {
        let id = self.skip_mods(id)?;
        match self.kind(id)? {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 => {
                self.u32_at(*self.types.get(id as usize)? + 8)
            }
            KIND_PTR => Some(8),
            // struct btf_array after the type header: element type, index type, count.
            KIND_ARRAY => {
                let t = *self.types.get(id as usize)?;
                let count = self.u32_at(t + 20)?;
                self.size_of(self.u32_at(t + 12)?)?.checked_mul(count)
            }
            _ => None,
        }
    }
}

fn read_u32(data: &[u8], o: usize) -> Result<u32> {
    let bytes = data
        .get(o..o + 4)
        .context("BTF shorter than its header says")?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(word))
}

fn cstr(data: &[u8], at: usize) -> &str {
    let tail = data.get(at..).unwrap_or_default();
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    std::str::from_utf8(&tail[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_ids() -> Kfuncs {
        Kfuncs::Ids(
            CONNTRACK_KFUNCS
                .iter()
                .zip([4242, 4343])
                .map(|(n, id)| (n.to_string(), id))
                .collect(),
        )
    }

    fn relocate_calls(elf: &[u8]) -> Result<aya_obj::Object> {
        let mut obj = aya_obj::Object::parse(elf)?;
        let text = obj.functions.keys().map(|(s, _)| *s).collect();
        obj.relocate_calls(&text)?;
        Ok(obj)
    }

    /// Instructions of the linked programs with opcode `code` and source register `src`.
    fn count(obj: &aya_obj::Object, code: u8, src: u8) -> usize {
        obj.programs
            .values()
            .flat_map(|p| obj.functions[&p.function_key()].instructions.iter())
            .filter(|i| i.code == code && i.src_reg() == src)
            .count()
    }

    #[test]
    fn unpatched_fails_in_aya_patched_links() {
        let err = relocate_calls(crate::PROGRAM).unwrap_err().to_string();
        assert!(err.contains("error relocating"), "{err}");

        let mut buf = crate::PROGRAM.to_vec();
        let n = patch_kfunc_calls(&mut buf, &fake_ids()).unwrap();
        assert!(n >= 2, "{n} calls patched");
        let obj = relocate_calls(&buf).expect("aya-obj links the patched object");
        // Every kfunc call is there (counted in each program and function that inlines
        // the lookup, hence >=).
        assert!(count(&obj, BPF_CALL_INSN, BPF_PSEUDO_KFUNC_CALL) >= n);
        // Nothing left to patch.
        assert_eq!(patch_kfunc_calls(&mut buf, &fake_ids()).unwrap(), 0);

        let mut stubbed = crate::PROGRAM.to_vec();
        assert_eq!(
            patch_kfunc_calls(&mut stubbed, &Kfuncs::Stubbed).unwrap(),
            n
        );
        let obj = relocate_calls(&stubbed).expect("aya-obj links the stubbed object");
        assert_eq!(count(&obj, BPF_CALL_INSN, BPF_PSEUDO_KFUNC_CALL), 0);
    }

    #[test]
    fn a_kfunc_without_an_id_is_an_error() {
        let mut buf = crate::PROGRAM.to_vec();
        let err = patch_kfunc_calls(&mut buf, &Kfuncs::Ids(HashMap::new())).unwrap_err();
        assert!(
            format!("{err:#}").contains("no BTF id for kfunc"),
            "{err:#}"
        );
    }

    /// The kernel's BTF: these tests compare with it, so without it they fail, saying why.
    fn vmlinux_btf() -> Vec<u8> {
        std::fs::read("/sys/kernel/btf/vmlinux")
            .expect("reading /sys/kernel/btf/vmlinux: these tests need a kernel with BTF")
    }

    #[test]
    fn truncated_btf_is_an_error_not_a_panic() {
        let btf = vmlinux_btf();
        for len in [0, 3, 20, 24, 1000, btf.len() / 2] {
            assert!(conntrack_support(&btf[..len]).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn vmlinux_btf_agrees_with_aya() {
        let data = vmlinux_btf();
        let ct = conntrack_support(&data)
            .expect("the conntrack kfuncs in vmlinux BTF (conntrack built in, not a module)");
        let aya = aya::Btf::from_sys_fs().unwrap();
        for f in CONNTRACK_KFUNCS {
            let want = aya
                .id_by_type_name_kind(f, aya_obj::btf::BtfKind::Func)
                .unwrap();
            assert_eq!(ct.kfuncs[f], want, "{f}");
        }
        assert!(ct.status_offset > 0);
    }
}
