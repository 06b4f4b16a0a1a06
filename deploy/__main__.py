from freehold.deploy.cli import main

main()
