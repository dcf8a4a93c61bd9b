#pragma once

namespace doorman {

// An OpenSSL pem_password_cb that never prompts. With a null callback, PEM_read_bio_*() asks
// for a passphrase on the controlling terminal when the PEM is encrypted, and blocks there: an
// encrypted key must be refused instead. Pass it to every PEM read.
inline int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace doorman
