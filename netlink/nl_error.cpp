#include "netlink/nl_error.h"

#include <netlink/errno.h>
#include <netlink/netlink.h>

namespace eni {

Error netlinkError(const std::string& what, int err) {
  const int code = err < 0 ? -err : err;
  ErrorCode type = ErrorCode::Transient;
  if (code == NLE_NODEV || code == NLE_OBJ_NOTFOUND)
    type = ErrorCode::NotFound;
  else if (code == NLE_PERM || code == NLE_NOACCESS)
    type = ErrorCode::Permission;
  else if (code == NLE_INVAL || code == NLE_RANGE || code == NLE_OPNOTSUPP)
    type = ErrorCode::Invalid;
  return Error{type, what + ": " + nl_geterror(err)};
}

}  // namespace eni
