import socket

from icp_stack.ports import PICK_FROM, ephemeral_start, free_port, free_ports, port_is_free, wait_port_free


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports:
        assert 1024 <= port < 65536
        assert port_is_free(port)


def test_free_port_never_repeats_in_a_process() -> None:
    seen = {free_port() for _ in range(50)}
    assert len(seen) == 50


def test_port_is_free_detects_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
        assert not wait_port_free(port, timeout=0.2)
    assert wait_port_free(port, timeout=2)


def test_picked_ports_lie_below_the_kernels_ephemeral_range() -> None:
    # Outgoing connections take their source ports from the ephemeral range: a port picked there
    # could be taken by one of the stack's own clients before the server binds it (seen in CI).
    start = ephemeral_start()
    assert start > PICK_FROM + 2000, "this machine's ephemeral range leaves no room below it"
    assert all(PICK_FROM <= port < start for port in free_ports(50))
