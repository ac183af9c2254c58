#!/usr/bin/env python3
"""An IP camera for the tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0)
serving rtsp://127.0.0.1:PORT/hall: H.264 pictures of one colour and an Opus tone. Prints "ready" once it listens; runs until
it is killed.

usage: rtsp_camera.py PORT RGB_HEX TONE_HZ
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    port, rgb, tone = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( videotestsrc is-live=true pattern=solid-color foreground-color=%d "
        "! video/x-raw,width=320,height=240,framerate=15/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=400 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 "
        "audiotestsrc is-live=true wave=sine freq=%d volume=0.5 "
        "! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 "
        "! opusenc ! rtpopuspay name=pay1 pt=97 )" % (0xFF000000 | rgb, tone)
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/hall", factory)
    if server.attach(None) == 0:
        print("could not listen", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
