_tuneton__ops() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="tuneton__ops"
                ;;
            tuneton__ops,backup)
                cmd="tuneton__ops__subcmd__backup"
                ;;
            tuneton__ops,backups)
                cmd="tuneton__ops__subcmd__backups"
                ;;
            tuneton__ops,completions)
                cmd="tuneton__ops__subcmd__completions"
                ;;
            tuneton__ops,config)
                cmd="tuneton__ops__subcmd__config"
                ;;
            tuneton__ops,db-recover)
                cmd="tuneton__ops__subcmd__db__subcmd__recover"
                ;;
            tuneton__ops,diagnose)
                cmd="tuneton__ops__subcmd__diagnose"
                ;;
            tuneton__ops,disaster-recover)
                cmd="tuneton__ops__subcmd__disaster__subcmd__recover"
                ;;
            tuneton__ops,health)
                cmd="tuneton__ops__subcmd__health"
                ;;
            tuneton__ops,help)
                cmd="tuneton__ops__subcmd__help"
                ;;
            tuneton__ops,man)
                cmd="tuneton__ops__subcmd__man"
                ;;
            tuneton__ops,notify)
                cmd="tuneton__ops__subcmd__notify"
                ;;
            tuneton__ops,pitr)
                cmd="tuneton__ops__subcmd__pitr"
                ;;
            tuneton__ops,restart)
                cmd="tuneton__ops__subcmd__restart"
                ;;
            tuneton__ops,restore)
                cmd="tuneton__ops__subcmd__restore"
                ;;
            tuneton__ops,rotate-logs)
                cmd="tuneton__ops__subcmd__rotate__subcmd__logs"
                ;;
            tuneton__ops,verify-backup)
                cmd="tuneton__ops__subcmd__verify__subcmd__backup"
                ;;
            tuneton__ops,wal-fetch)
                cmd="tuneton__ops__subcmd__wal__subcmd__fetch"
                ;;
            tuneton__ops,wal-push)
                cmd="tuneton__ops__subcmd__wal__subcmd__push"
                ;;
            tuneton__ops__subcmd__backups,help)
                cmd="tuneton__ops__subcmd__backups__subcmd__help"
                ;;
            tuneton__ops__subcmd__backups,list)
                cmd="tuneton__ops__subcmd__backups__subcmd__list"
                ;;
            tuneton__ops__subcmd__backups,prune)
                cmd="tuneton__ops__subcmd__backups__subcmd__prune"
                ;;
            tuneton__ops__subcmd__backups__subcmd__help,help)
                cmd="tuneton__ops__subcmd__backups__subcmd__help__subcmd__help"
                ;;
            tuneton__ops__subcmd__backups__subcmd__help,list)
                cmd="tuneton__ops__subcmd__backups__subcmd__help__subcmd__list"
                ;;
            tuneton__ops__subcmd__backups__subcmd__help,prune)
                cmd="tuneton__ops__subcmd__backups__subcmd__help__subcmd__prune"
                ;;
            tuneton__ops__subcmd__config,check)
                cmd="tuneton__ops__subcmd__config__subcmd__check"
                ;;
            tuneton__ops__subcmd__config,help)
                cmd="tuneton__ops__subcmd__config__subcmd__help"
                ;;
            tuneton__ops__subcmd__config,show)
                cmd="tuneton__ops__subcmd__config__subcmd__show"
                ;;
            tuneton__ops__subcmd__config__subcmd__help,check)
                cmd="tuneton__ops__subcmd__config__subcmd__help__subcmd__check"
                ;;
            tuneton__ops__subcmd__config__subcmd__help,help)
                cmd="tuneton__ops__subcmd__config__subcmd__help__subcmd__help"
                ;;
            tuneton__ops__subcmd__config__subcmd__help,show)
                cmd="tuneton__ops__subcmd__config__subcmd__help__subcmd__show"
                ;;
            tuneton__ops__subcmd__help,backup)
                cmd="tuneton__ops__subcmd__help__subcmd__backup"
                ;;
            tuneton__ops__subcmd__help,backups)
                cmd="tuneton__ops__subcmd__help__subcmd__backups"
                ;;
            tuneton__ops__subcmd__help,completions)
                cmd="tuneton__ops__subcmd__help__subcmd__completions"
                ;;
            tuneton__ops__subcmd__help,config)
                cmd="tuneton__ops__subcmd__help__subcmd__config"
                ;;
            tuneton__ops__subcmd__help,db-recover)
                cmd="tuneton__ops__subcmd__help__subcmd__db__subcmd__recover"
                ;;
            tuneton__ops__subcmd__help,diagnose)
                cmd="tuneton__ops__subcmd__help__subcmd__diagnose"
                ;;
            tuneton__ops__subcmd__help,disaster-recover)
                cmd="tuneton__ops__subcmd__help__subcmd__disaster__subcmd__recover"
                ;;
            tuneton__ops__subcmd__help,health)
                cmd="tuneton__ops__subcmd__help__subcmd__health"
                ;;
            tuneton__ops__subcmd__help,help)
                cmd="tuneton__ops__subcmd__help__subcmd__help"
                ;;
            tuneton__ops__subcmd__help,man)
                cmd="tuneton__ops__subcmd__help__subcmd__man"
                ;;
            tuneton__ops__subcmd__help,notify)
                cmd="tuneton__ops__subcmd__help__subcmd__notify"
                ;;
            tuneton__ops__subcmd__help,pitr)
                cmd="tuneton__ops__subcmd__help__subcmd__pitr"
                ;;
            tuneton__ops__subcmd__help,restart)
                cmd="tuneton__ops__subcmd__help__subcmd__restart"
                ;;
            tuneton__ops__subcmd__help,restore)
                cmd="tuneton__ops__subcmd__help__subcmd__restore"
                ;;
            tuneton__ops__subcmd__help,rotate-logs)
                cmd="tuneton__ops__subcmd__help__subcmd__rotate__subcmd__logs"
                ;;
            tuneton__ops__subcmd__help,verify-backup)
                cmd="tuneton__ops__subcmd__help__subcmd__verify__subcmd__backup"
                ;;
            tuneton__ops__subcmd__help,wal-fetch)
                cmd="tuneton__ops__subcmd__help__subcmd__wal__subcmd__fetch"
                ;;
            tuneton__ops__subcmd__help,wal-push)
                cmd="tuneton__ops__subcmd__help__subcmd__wal__subcmd__push"
                ;;
            tuneton__ops__subcmd__help__subcmd__backups,list)
                cmd="tuneton__ops__subcmd__help__subcmd__backups__subcmd__list"
                ;;
            tuneton__ops__subcmd__help__subcmd__backups,prune)
                cmd="tuneton__ops__subcmd__help__subcmd__backups__subcmd__prune"
                ;;
            tuneton__ops__subcmd__help__subcmd__config,check)
                cmd="tuneton__ops__subcmd__help__subcmd__config__subcmd__check"
                ;;
            tuneton__ops__subcmd__help__subcmd__config,show)
                cmd="tuneton__ops__subcmd__help__subcmd__config__subcmd__show"
                ;;
            tuneton__ops__subcmd__help__subcmd__notify,test)
                cmd="tuneton__ops__subcmd__help__subcmd__notify__subcmd__test"
                ;;
            tuneton__ops__subcmd__notify,help)
                cmd="tuneton__ops__subcmd__notify__subcmd__help"
                ;;
            tuneton__ops__subcmd__notify,test)
                cmd="tuneton__ops__subcmd__notify__subcmd__test"
                ;;
            tuneton__ops__subcmd__notify__subcmd__help,help)
                cmd="tuneton__ops__subcmd__notify__subcmd__help__subcmd__help"
                ;;
            tuneton__ops__subcmd__notify__subcmd__help,test)
                cmd="tuneton__ops__subcmd__notify__subcmd__help__subcmd__test"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        tuneton__ops)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backup)
            opts="-q -v -y -h -V --kind --compression --no-retention --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --kind)
                    COMPREPLY=($(compgen -W "db app config full base" -- "${cur}"))
                    return 0
                    ;;
                --compression)
                    COMPREPLY=($(compgen -W "zstd gzip none" -- "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version list prune help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups__subcmd__help)
            opts="list prune help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups__subcmd__help__subcmd__list)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups__subcmd__help__subcmd__prune)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups__subcmd__list)
            opts="-q -v -y -h -V --kind --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --kind)
                    COMPREPLY=($(compgen -W "db app config base" -- "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__backups__subcmd__prune)
            opts="-q -v -y -h -V --kind --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --kind)
                    COMPREPLY=($(compgen -W "db app config base" -- "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__completions)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version bash elvish fish powershell zsh"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version show check help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config__subcmd__check)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config__subcmd__help)
            opts="show check help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config__subcmd__help__subcmd__check)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config__subcmd__help__subcmd__show)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__config__subcmd__show)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__db__subcmd__recover)
            opts="-q -v -y -h -V --amcheck --check-only --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__diagnose)
            opts="-q -v -y -h -V --out --upload --email --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --out)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__disaster__subcmd__recover)
            opts="-q -v -y -h -V --clean --allow-unverified --skip-db --skip-app --skip-config --jobs --no-start --source-db --no-owner --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --jobs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --source-db)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__health)
            opts="-q -v -y -h -V --format --prom-file --alert --check --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --format)
                    COMPREPLY=($(compgen -W "text json nagios" -- "${cur}"))
                    return 0
                    ;;
                --prom-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --check)
                    COMPREPLY=($(compgen -W "service http database disk memory load" -- "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help)
            opts="backup backups verify-backup restore wal-push wal-fetch pitr disaster-recover db-recover rotate-logs health restart diagnose notify config completions man help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__backup)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__backups)
            opts="list prune"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__backups__subcmd__list)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__backups__subcmd__prune)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__completions)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__config)
            opts="show check"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__config__subcmd__check)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__config__subcmd__show)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__db__subcmd__recover)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__diagnose)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__disaster__subcmd__recover)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__health)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__man)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__notify)
            opts="test"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__notify__subcmd__test)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__pitr)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__restart)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__restore)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__rotate__subcmd__logs)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__verify__subcmd__backup)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__wal__subcmd__fetch)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__help__subcmd__wal__subcmd__push)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__man)
            opts="-q -v -y -h -V --out-dir --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --out-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__notify)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version test help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__notify__subcmd__help)
            opts="test help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__notify__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__notify__subcmd__help__subcmd__test)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__notify__subcmd__test)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version slack pagerduty email"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__pitr)
            opts="-q -v -y -h -V --target-time --tz --target-lsn --target-xid --target-name --immediate --action --base --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --target-time)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tz)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --target-lsn)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --target-xid)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --target-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --action)
                    COMPREPLY=($(compgen -W "promote pause shutdown" -- "${cur}"))
                    return 0
                    ;;
                --base)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__restart)
            opts="-q -v -y -h -V --keep-cache --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__restore)
            opts="-q -v -y -h -V --kind --target-db --target-dir --clean --jobs --no-owner --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --kind)
                    COMPREPLY=($(compgen -W "db app config base" -- "${cur}"))
                    return 0
                    ;;
                --target-db)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --target-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --jobs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__rotate__subcmd__logs)
            opts="-q -v -y -h -V --force --set --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --set)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__verify__subcmd__backup)
            opts="-q -v -y -h -V --all --kind --max-age --max-age-critical --restore-test --wal --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --kind)
                    COMPREPLY=($(compgen -W "db app config base" -- "${cur}"))
                    return 0
                    ;;
                --max-age)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-age-critical)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__wal__subcmd__fetch)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        tuneton__subcmd__ops__subcmd__wal__subcmd__push)
            opts="-q -v -y -h -V --config --json --quiet --verbose --no-progress --dry-run --yes --repo --from --db-name --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --repo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -W "local s3" -- "${cur}"))
                    return 0
                    ;;
                --db-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _tuneton__ops -o nosort -o bashdefault -o default tuneton-ops
else
    complete -F _tuneton__ops -o bashdefault -o default tuneton-ops
fi
