"""Starts a program the way systemd's socket activation does: listens on a UNIX socket,
then execs the program with that socket as file descriptor 3 and LISTEN_FDS=1,
LISTEN_PID=its pid (exec keeps the pid). Like `systemd-socket-activate -l PATH`, without
needing systemd on the machine.

usage: socket_activate.py SOCKET_PATH PROGRAM [ARG...]
"""

import os
import socket
import sys


def main():
    path, program = sys.argv[1], sys.argv[2:]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o660)
    listener.listen(128)
    if listener.fileno() != 3:
        os.dup2(listener.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(program[0], program)


if __name__ == "__main__":
    main()
