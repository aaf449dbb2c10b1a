from stream_anon.cli import main

main()
