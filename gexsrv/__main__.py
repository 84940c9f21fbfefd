from gexsrv.cli import main

main()
