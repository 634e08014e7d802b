"""What the test fakes of cloud APIs (scripts/*_fake.py) share: the TLS
server that bounds its connections, and the throwaway CA and server
certificate it serves with (made with the PyPI cryptography package).
"""

import datetime
import http.server
import ipaddress
import os
import ssl
import sys
import threading
import traceback


class TlsServer(http.server.ThreadingHTTPServer):
    """Serves each connection over TLS on a thread of its own, at most
    `max_threads` at once (more are closed at accept), each idle at most
    `idle_timeout` seconds."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, ctx, max_threads, idle_timeout):
        super().__init__(addr, handler)
        self.ctx, self.max_threads, self.idle_timeout = ctx, max_threads, idle_timeout
        self.slots = threading.BoundedSemaphore(max_threads)

    def process_request(self, request, client_address):
        if not self.slots.acquire(timeout=1):
            sys.stderr.write("busy: %d connections open; closing a new one\n" % self.max_threads)
            self.shutdown_request(request)
            return
        t = threading.Thread(target=self.work, args=(request, client_address), daemon=True)
        try:
            t.start()
        except RuntimeError:
            self.slots.release()
            self.shutdown_request(request)

    def work(self, request, client_address):
        tls = None
        try:
            request.settimeout(self.idle_timeout)
            tls = self.ctx.wrap_socket(request, server_side=True)
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write("connection from %s: %s\n" % (client_address[0], str(e)[:200]))
        except Exception:
            traceback.print_exc()
        finally:
            try:
                if tls is not None:
                    tls.close()
                else:
                    request.close()
            except OSError:
                pass
            self.slots.release()


def make_certs(directory, ca_common_name):
    """A test CA named `ca_common_name` and a server certificate for 127.0.0.1 and
    localhost, written to `directory` (ca.pem, server.pem, server-key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name)])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server-key.pem")}
    pem = serialization.Encoding.PEM
    with open(paths["server-key.pem"] + ".tmp", "wb") as f:
        os.chmod(f.name, 0o600)
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(paths["server.pem"] + ".tmp", "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(paths["ca.pem"] + ".tmp", "wb") as f:
        f.write(ca.public_bytes(pem))
    for p in paths.values():
        os.replace(p + ".tmp", p)
    return paths
