from rmr1.cli import main

main()
