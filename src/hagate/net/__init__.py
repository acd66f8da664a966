"""The only code that touches a socket: non-blocking connections, pipes, TLS contexts."""
