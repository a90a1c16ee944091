package main

import (
	"net"
	"time"
)

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
