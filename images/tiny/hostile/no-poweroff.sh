#!/bin/sh
# Hostile guest (d): ignores the ACPI power button, so it never powers off by itself.
[ "$1" = start ] || exit 0
printf '#!/bin/sh\necho "hostile: power button ignored" > /dev/console\n' > /etc/acpi/PWRF/00000080
