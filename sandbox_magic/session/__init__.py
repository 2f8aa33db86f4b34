"""Which server, sandbox and contexts a kernel uses: session, embedded server, journal, I/O loop."""
