{
  "targets": [
    {
      "target_name": "imgport_native",
      "sources": ["native/seek.c"],
      "cflags": ["-O2"]
    }
  ]
}
