import CPhyr
import Glibc

/// Records `error` as this thread's last error and returns its -errno.
func fail(_ error: PhyrError) -> Int32 {
    guard let buf = phyr_shim_error_buffer() else { return -error.code }
    var n = 0
    for byte in error.message.utf8 where n < Int(PHYR_ERR_MAX) - 1 {
        buf[n] = CChar(bitPattern: byte)
        n += 1
    }
    buf[n] = 0
    return -error.code
}

/// The live range behind a handle, checked against the registry before
/// anything is read through it.
func pinID(_ handle: OpaquePointer?, _ function: String) -> Result<UInt64, PhyrError> {
    guard let handle else { return .failure(PhyrError(EINVAL, "\(function): the range handle is NULL")) }
    let raw = UInt(bitPattern: handle)
    guard let id = PinTable.id(forHandle: raw),
          Pinner.table.withLock({ $0.range(id) != nil }) else {
        return .failure(PhyrError(EINVAL, "\(function): \(hex(UInt64(raw))) is not a live range "
                                  + "(already released, or not a handle libphyr returned)"))
    }
    return .success(id)
}
