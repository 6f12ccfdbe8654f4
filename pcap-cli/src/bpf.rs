//! Filters compiled by libpcap, for packets read from files (`pcap decode FILE --filter`),
//! with libpcap loaded only then. Linking it would load it and the nine libraries it
//! needs (libsystemd, libgcrypt, libdbus, ...) into every `pcap` run: half a millisecond
//! before any command starts, for a library only that one use needs. The daemon compiles
//! every other filter.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::OnceLock;

/// Names libpcap's runtime library goes by: Debian's (`libpcap0.8`), then others'.
const LIBRARY_NAMES: [&str; 3] = ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"];
/// Snapshot length of the dead handle filters are compiled for: as tcpdump's default, the
/// largest packet a filter returns a length for.
const SNAPLEN: c_int = 262_144;

/// `struct bpf_program`.
#[repr(C)]
struct Program {
    len: c_uint,
    insns: *mut c_void,
}

/// `struct pcap_pkthdr`.
#[repr(C)]
struct PacketHeader {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

// The C signatures (pcap.h) of the functions used.
type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile = unsafe extern "C" fn(*mut c_void, *mut Program, *const c_char, c_int, u32) -> c_int;
type GetErr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type Close = unsafe extern "C" fn(*mut c_void);
type OfflineFilter = unsafe extern "C" fn(*const Program, *const PacketHeader, *const u8) -> c_int;
type FreeCode = unsafe extern "C" fn(*mut Program);
type DatalinkName = unsafe extern "C" fn(c_int) -> *const c_char;

/// The libpcap functions used, from the loaded library.
struct Library {
    open_dead: OpenDead,
    compile: Compile,
    geterr: GetErr,
    close: Close,
    offline_filter: OfflineFilter,
    freecode: FreeCode,
    datalink_val_to_name: DatalinkName,
}

/// Why a filter could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// libpcap refused the text: its message ("libpcap error: syntax error").
    Invalid(String),
    /// libpcap could not be loaded: what to install.
    Unavailable(String),
}

/// A filter compiled for one link type.
pub struct Filter {
    lib: &'static Library,
    program: Program,
}

impl Filter {
    /// Compiles `text` for packets of `dlt` (a DLT_ value), as tcpdump does for a file of
    /// them; the error is libpcap's ("libpcap error: syntax error").
    pub fn compile(text: &str, dlt: i32) -> Result<Filter, FilterError> {
        let lib = library().map_err(FilterError::Unavailable)?;
        let text = CString::new(text)
            .map_err(|_| FilterError::Invalid("the filter holds a NUL byte".to_owned()))?;
        // SAFETY: the functions come from libpcap with these C signatures. The dead handle
        // is checked for NULL, used only here and closed once; the error text is copied
        // before the handle is closed; `program` is filled by pcap_compile, which leaves it
        // empty when it fails.
        #[allow(unsafe_code)]
        unsafe {
            let handle = (lib.open_dead)(dlt, SNAPLEN);
            if handle.is_null() {
                return Err(FilterError::Unavailable(
                    "libpcap could not make a handle to compile with: out of memory".to_owned(),
                ));
            }
            let mut program = Program {
                len: 0,
                insns: std::ptr::null_mut(),
            };
            let ok = (lib.compile)(handle, &mut program, text.as_ptr(), 1, 0) == 0;
            let result = if ok {
                Ok(Filter { lib, program })
            } else {
                let e = CStr::from_ptr((lib.geterr)(handle)).to_string_lossy();
                Err(FilterError::Invalid(format!("libpcap error: {e}")))
            };
            (lib.close)(handle);
            result
        }
    }

    /// Whether the packet `data` (whole, from its link-layer header) passes.
    pub fn matches(&self, data: &[u8]) -> bool {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            caplen: len,
            len,
        };
        // SAFETY: `program` is a compiled program not yet freed; libpcap reads at most
        // `caplen` bytes of `data`, which holds that many.
        #[allow(unsafe_code)]
        unsafe {
            (self.lib.offline_filter)(&self.program, &header, data.as_ptr()) != 0
        }
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        // SAFETY: `program` was filled by pcap_compile and is freed once, here.
        #[allow(unsafe_code)]
        unsafe {
            (self.lib.freecode)(&mut self.program)
        }
    }
}

/// libpcap's name for the link type `dlt` ("EN10MB"), if it has one (or is not loadable).
pub fn link_type_name(dlt: i32) -> Option<String> {
    let lib = library().ok()?;
    // SAFETY: pcap_datalink_val_to_name returns NULL or a static C string.
    #[allow(unsafe_code)]
    unsafe {
        let name = (lib.datalink_val_to_name)(dlt);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

/// libpcap, loaded on first use.
fn library() -> Result<&'static Library, String> {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    LIBRARY.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Library, String> {
    load_from(&LIBRARY_NAMES)
}

/// libpcap, from the first of `names` that loads.
#[allow(unsafe_code)]
fn load_from(names: &[&str]) -> Result<Library, String> {
    let handle = names
        .iter()
        .find_map(|name| {
            let name = CString::new(*name).expect("no NUL");
            // SAFETY: dlopen of a library by name; libpcap's initialisers are safe to run.
            let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            (!h.is_null()).then_some(h)
        })
        .ok_or_else(|| {
            format!(
                "filters on files need libpcap, which is not installed (none of {}): \
                 install it (Debian: apt install libpcap0.8)",
                names.join(", ")
            )
        })?;
    let symbol = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).expect("no NUL");
        // SAFETY: dlsym on a handle dlopen returned, which is never closed.
        let f = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if f.is_null() {
            Err(format!(
                "the libpcap installed has no {name}: libpcap 1.0 or newer is needed"
            ))
        } else {
            Ok(f)
        }
    };
    let (open_dead, compile, geterr, close) = (
        symbol("pcap_open_dead")?,
        symbol("pcap_compile")?,
        symbol("pcap_geterr")?,
        symbol("pcap_close")?,
    );
    let (offline_filter, freecode, datalink_val_to_name) = (
        symbol("pcap_offline_filter")?,
        symbol("pcap_freecode")?,
        symbol("pcap_datalink_val_to_name")?,
    );
    use std::mem::transmute;
    // SAFETY: each symbol is libpcap's function of that name, whose C signature (pcap.h)
    // the type it becomes repeats; the library stays loaded for the life of the process.
    unsafe {
        Ok(Library {
            open_dead: transmute::<*mut c_void, OpenDead>(open_dead),
            compile: transmute::<*mut c_void, Compile>(compile),
            geterr: transmute::<*mut c_void, GetErr>(geterr),
            close: transmute::<*mut c_void, Close>(close),
            offline_filter: transmute::<*mut c_void, OfflineFilter>(offline_filter),
            freecode: transmute::<*mut c_void, FreeCode>(freecode),
            datalink_val_to_name: transmute::<*mut c_void, DatalinkName>(datalink_val_to_name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_matches_and_reports_libpcap_errors() {
        // DLT_RAW on Linux is 12 (LINKTYPE_RAW 101): a bare IPv4/UDP header.
        let mut packet = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        packet.extend([0, 53, 0, 53, 0, 8, 0, 0]);
        let udp = Filter::compile("udp port 53", 12).unwrap();
        assert!(udp.matches(&packet));
        packet[9] = 6;
        assert!(!udp.matches(&packet));
        let Some(FilterError::Invalid(e)) = Filter::compile("udp prot 1", 12).err() else {
            panic!("libpcap refuses it");
        };
        assert!(e.starts_with("libpcap error: "), "{e}");
        assert!(e.contains("syntax error"), "{e}");
        let Some(FilterError::Invalid(e)) = Filter::compile("udp\0", 12).err() else {
            panic!("a NUL is refused");
        };
        assert!(e.contains("NUL"), "{e}");
        assert_eq!(link_type_name(1).as_deref(), Some("EN10MB"));
        assert_eq!(link_type_name(-5), None);
    }

    #[test]
    fn a_missing_libpcap_says_what_to_install() {
        let e = load_from(&["libpcap-not-here.so.0"]).err().unwrap();
        assert!(e.contains("none of libpcap-not-here.so.0"), "{e}");
        assert!(e.contains("apt install libpcap0.8"), "{e}");
    }
}
