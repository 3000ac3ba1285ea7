# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tuneton_ops_global_optspecs
    string join \n config= json q/quiet v/verbose no-progress dry-run y/yes repo= from= db-name= h/help V/version
end

function __fish_tuneton_ops_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tuneton_ops_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tuneton_ops_using_subcommand
    set -l cmd (__fish_tuneton_ops_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "backup" -d 'Back up the database, the application or the config into the repository'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "backups" -d 'List backups, or apply the retention policy'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "verify-backup" -d 'Decrypt and decompress every byte of backups and check them against their manifests'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "restore" -d 'Restore a database backup into a database, or an app/config backup into a directory'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "wal-push" -d 'Archive a WAL file into the repository (PostgreSQL archive_command = \'tuneton-ops wal-push %p\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "wal-fetch" -d 'Fetch an archived WAL file (restore_command = \'tuneton-ops wal-fetch %f %p\'); exit 1 = not archived, 126 = error'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "pitr" -d 'Point-in-time recovery: restore a base backup and replay archived WAL to a target (time, LSN, xid, name)'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "disaster-recover" -d 'Rebuild this host from the repository: newest verified db, app and config backups, then start the app'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "db-recover" -d 'Check for data corruption (pg_checksums, pg_amcheck) and recover from the newest verified backup if found'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "rotate-logs" -d 'Rotate the configured log sets without losing a line; compress in parallel; apply retention'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "health" -d 'Check the application service, its HTTP health endpoint, the database, disks, memory and load (exit 0/1/2/3)'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "restart" -d 'Restart the application: stop (SIGKILL of its own main PID past the deadline), empty the cache dirs, start, wait until healthy'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "diagnose" -d 'Collect a redacted diagnostic bundle (tar.gz): service, processes, disks, memory, network, database, logs, config'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "notify" -d 'Alert channels (Slack, PagerDuty, email): send a test message'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "config" -d 'Show or check the merged configuration'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "completions" -d 'Print a shell completion script (needs no config)'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "man" -d 'Print the man page, or write every page into a directory (needs no config)'
complete -c tuneton-ops -n "__fish_tuneton_ops_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l kind -d 'What to back up' -r -f -a "db\t'PostgreSQL logical dump (pg_dump custom format)'
app\t'The application directory (paths.app_dir)'
config\t'The configuration directory (paths.config_dir)'
full\t'db, app and config in one run'
base\t'A physical base backup (pg_basebackup) for point-in-time recovery'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l compression -d 'Compression (overrides repository.compression): zstd is fast; gzip for compatibility' -r -f -a "zstd\t''
gzip\t''
none\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l no-retention -d 'Do not apply the retention policy after this backup'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backup" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -f -a "list" -d 'List backups: id, kind, time, size, verification state'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -f -a "prune" -d 'Apply the retention policy now (with --dry-run: list what would be deleted)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and not __fish_seen_subcommand_from list prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l kind -d 'Only this kind' -r -f -a "db\t'PostgreSQL logical dump (pg_dump custom format)'
app\t'The application directory (tar)'
config\t'The configuration directory (tar)'
base\t'A physical base backup (pg_basebackup tar) for point-in-time recovery'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l kind -d 'Only this kind (default: every kind)' -r -f -a "db\t'PostgreSQL logical dump (pg_dump custom format)'
app\t'The application directory (tar)'
config\t'The configuration directory (tar)'
base\t'A physical base backup (pg_basebackup tar) for point-in-time recovery'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from prune" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from help" -f -a "list" -d 'List backups: id, kind, time, size, verification state'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Apply the retention policy now (with --dry-run: list what would be deleted)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand backups; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l kind -d 'Only this kind' -r -f -a "db\t'PostgreSQL logical dump (pg_dump custom format)'
app\t'The application directory (tar)'
config\t'The configuration directory (tar)'
base\t'A physical base backup (pg_basebackup tar) for point-in-time recovery'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l max-age -d 'Warn (exit 1) when the newest backup is older than this many hours (default verify.max_age_warn_hours)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l max-age-critical -d 'Fail (exit 2) when the newest backup is older than this many hours (default verify.max_age_crit_hours)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l all -d 'Verify every backup in the repository'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l restore-test -d 'Also restore database backups into a scratch database and compare every table\'s row count'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l wal -d 'Check the WAL archive instead: last archived segment and its age (--max-age), gaps since the newest base backup, server archiver failures'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand verify-backup" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l kind -d 'Kind for `latest` (default db)' -r -f -a "db\t'PostgreSQL logical dump (pg_dump custom format)'
app\t'The application directory (tar)'
config\t'The configuration directory (tar)'
base\t'A physical base backup (pg_basebackup tar) for point-in-time recovery'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l target-db -d 'Database to restore into (created if missing); for database backups' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l target-dir -d 'Directory to restore into; for app/config backups' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l jobs -d 'Parallel pg_restore jobs (spools the decrypted dump to paths.scratch_dir, mode 0600)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l clean -d 'Replace what the target holds (database: drop objects first; directory: move the old one aside)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l no-owner -d 'Give every object to the restoring user and skip GRANTs (pg_restore --no-owner --no-privileges): for a server without the backup\'s roles'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restore" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-push" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand wal-fetch" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l target-time -d 'Recover up to this time; must carry a zone offset ("2026-12-03 14:05:00+01:00", "...Z") unless --tz is given' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l tz -d 'Zone for a --target-time without one: "UTC" or an offset like "+02:00"' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l target-lsn -d 'Recover up to this WAL location (e.g. 0/3000060)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l target-xid -d 'Recover up to this transaction id' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l target-name -d 'Recover up to this named restore point (pg_create_restore_point)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l action -d 'What the server does at the target' -r -f -a "promote\t'End recovery and accept writes'
pause\t'Stay in recovery, paused, for inspection (pg_wal_replay_resume() to go on)'
shutdown\t'Stop the server at the target'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l base -d 'Use this base backup instead of choosing one' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l immediate -d 'Stop as soon as the base backup is consistent'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand pitr" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l jobs -d 'Parallel pg_restore jobs' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l source-db -d 'Restore the backups of this database (default: database.name, into which it is restored)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l clean -d 'Replace what the targets hold: drop the database\'s objects, move existing directories aside'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l allow-unverified -d 'Also use backups that were never verified (when a kind has no verified backup)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l skip-db -d 'Leave the database alone'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l skip-app -d 'Leave the application directory alone'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l skip-config -d 'Leave the config directory alone'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l no-start -d 'Do not start the application afterwards'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l no-owner -d 'Give every database object to the restoring user and skip GRANTs (pg_restore --no-owner --no-privileges): for a new server without the backup\'s roles'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand disaster-recover" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l amcheck -d 'Also run pg_amcheck (btree indexes, heap) on the running server'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l check-only -d 'Only check; never restore'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand db-recover" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l set -d 'Only this log set (repeatable; default: every set in [logs])' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l force -d 'Rotate every non-empty file now, whatever its size and age'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand rotate-logs" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l format -d 'Output format' -r -f -a "text\t'One line per check'
json\t'One JSON document (same as --json)'
nagios\t'Nagios/Icinga plugin output: status line with perfdata, then one line per check'"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l prom-file -d 'Also write the results as a Prometheus textfile (replaced atomically), e.g. for node_exporter' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l check -d 'Run only these checks (repeatable; default: every enabled check)' -r -f -a "service\t''
http\t''
database\t''
disk\t''
memory\t''
load\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l alert -d 'Alert through the configured channels when a check changes state (state kept in health.state_file)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand health" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l keep-cache -d 'Leave the cache directories alone'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand restart" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l out -d 'Write the bundle here: a directory, or a file name ending in .tar.gz (default diagnose.out_dir)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l upload -d 'Also upload the bundle to the S3 repository (under diagnostics/)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l email -d 'Also email the bundle as an attachment through alerts.email'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand diagnose" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -f -a "test" -d 'Send a test message through every configured channel (or one) and report each result; exit 2 if any failed'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and not __fish_seen_subcommand_from test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from test" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "test" -d 'Send a test message through every configured channel (or one) and report each result; exit 2 if any failed'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -f -a "show" -d 'Print every setting, its value and where it came from (secrets redacted)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -f -a "check" -d 'Validate the configuration; exit 3 naming each bad key'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and not __fish_seen_subcommand_from show check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print every setting, its value and where it came from (secrets redacted)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate the configuration; exit 3 naming each bad key'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand completions" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l out-dir -d 'Write tuneton-ops.1 and one page per subcommand into this directory instead of printing the main page' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l config -d 'Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l repo -d 'Backup repository directory (overrides repository.path)' -r -F
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l from -d 'Which repository reading commands use (default: local when repository.local, else s3)' -r -f -a "local\t''
s3\t''"
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l db-name -d 'Database to back up (overrides database.name and DB_NAME)' -r
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -s q -l quiet -d 'Only errors on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -s v -l verbose -d 'More detail on stderr'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l no-progress -d 'No progress bars, even on a terminal (periodic log lines instead)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -l dry-run -d 'Print each action that would be taken; change nothing'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -s y -l yes -d 'Answer yes to confirmations (for scripts)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -s h -l help -d 'Print help'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand man" -s V -l version -d 'Print version'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "backup" -d 'Back up the database, the application or the config into the repository'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "backups" -d 'List backups, or apply the retention policy'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "verify-backup" -d 'Decrypt and decompress every byte of backups and check them against their manifests'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "restore" -d 'Restore a database backup into a database, or an app/config backup into a directory'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "wal-push" -d 'Archive a WAL file into the repository (PostgreSQL archive_command = \'tuneton-ops wal-push %p\')'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "wal-fetch" -d 'Fetch an archived WAL file (restore_command = \'tuneton-ops wal-fetch %f %p\'); exit 1 = not archived, 126 = error'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "pitr" -d 'Point-in-time recovery: restore a base backup and replay archived WAL to a target (time, LSN, xid, name)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "disaster-recover" -d 'Rebuild this host from the repository: newest verified db, app and config backups, then start the app'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "db-recover" -d 'Check for data corruption (pg_checksums, pg_amcheck) and recover from the newest verified backup if found'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "rotate-logs" -d 'Rotate the configured log sets without losing a line; compress in parallel; apply retention'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "health" -d 'Check the application service, its HTTP health endpoint, the database, disks, memory and load (exit 0/1/2/3)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "restart" -d 'Restart the application: stop (SIGKILL of its own main PID past the deadline), empty the cache dirs, start, wait until healthy'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "diagnose" -d 'Collect a redacted diagnostic bundle (tar.gz): service, processes, disks, memory, network, database, logs, config'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "notify" -d 'Alert channels (Slack, PagerDuty, email): send a test message'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "config" -d 'Show or check the merged configuration'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "completions" -d 'Print a shell completion script (needs no config)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "man" -d 'Print the man page, or write every page into a directory (needs no config)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and not __fish_seen_subcommand_from backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and __fish_seen_subcommand_from backups" -f -a "list" -d 'List backups: id, kind, time, size, verification state'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and __fish_seen_subcommand_from backups" -f -a "prune" -d 'Apply the retention policy now (with --dry-run: list what would be deleted)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "test" -d 'Send a test message through every configured channel (or one) and report each result; exit 2 if any failed'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print every setting, its value and where it came from (secrets redacted)'
complete -c tuneton-ops -n "__fish_tuneton_ops_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Validate the configuration; exit 3 naming each bad key'
