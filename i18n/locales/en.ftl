# The sentences the staff read, in English. Every message here must exist in
# every other locales/*.ftl (a test checks it). Keep lines under 80 columns:
# the PC's console wraps mid-word.

## Boot menus (ISOLINUX, GRUB, LILO): shown in ASCII by the loaders.
menu-install = Install (erases this PC)
menu-inventory = Inventory only (report hardware, change nothing)
menu-rescue = Rescue shell
menu-local = Boot from local disk
menu-autoboot = Automatic boot in # second{"{"},s{"}"}...
menu-tabmsg = Press [Tab] to edit options

## The first lines on the screen.
banner-install = This computer is being set up. You can leave it:
banner-install-2 = it restarts by itself when it is done.
banner-inventory = This computer's details are being sent to the install server;
banner-inventory-2 = it switches itself off afterwards.

## Steps, each followed by its result.
step-hardware = Finding hardware
step-network = Connecting to the network
step-looking = Looking at this computer
step-server = Contacting the install server { $server }
step-done = done
step-drivers = done ({ $count ->
    [one] { $count } driver
   *[other] { $count } drivers
})
step-not-yet = not yet
retry-in = Trying again in { $secs ->
    [one] { $secs } second
   *[other] { $secs } seconds
}...
not-approved = The install server has not accepted this computer yet: ask the volunteer to accept new PCs on the dashboard. Asking again in 60 seconds.
fail-not-recognised = The install server already knows a computer with this identity: ask the volunteer to let this PC enrol again on the dashboard.
fail-replayed = The answer from the install server is not the answer to this computer's question (an old answer played again?): nothing will be written to the disks.
no-nic-driver = This CD has no driver for the network card with PCI id { $id }.
details-sent = The server has this computer's details. Powering off.
disks-used = The disks will be used like this:
countdown = Starting in { $secs } s (switch the computer off now to stop)...
starting = Starting.
technical-detail = Technical detail

## What the install shows while it writes the disk (screen only: the events
## sent to the server keep their English wording).
event-partition = Writing the partition tables
event-format = Making the filesystems
event-download = Downloading and unpacking the system
event-configure = Configuring the installed system
event-installed = Installed; restarting into the new system

## When the program stops.
agent-finished = The install program finished.
choices = Type a letter and press Enter:  r = try again   s = shell   b = restart   p = power off
no-shell = This CD carries no shell (/bin/sh is missing).
shell-start = Starting a shell; type `exit` to come back.

## Failures: one sentence the staff can read out over the phone.
fail-agent-start = The install program could not start.
fail-agent-stopped = The install program stopped unexpectedly.
fail-restart = Could not restart.
fail-power-off = Could not power off.
fail-power-off-switch = Could not power off; you may switch the computer off.
fail-shell = The shell did not start.
fail-settings = The CD's settings are wrong; the CD must be rebuilt.
fail-network = This computer could not connect to the network. Check that the network cable is plugged in.
fail-server = This computer could not reach the install server.
fail-kernel = This CD does not match its own kernel; the CD must be rebuilt.
fail-key = The server key on this CD is damaged; the CD must be rebuilt.
fail-refused = The answer from the install server is not signed by the server this CD belongs to: nothing will be written to the disks.
fail-not-pinned = The server that answered is not the install server this CD belongs to (something on the network may be in the way): nothing will be written to the disks.
fail-not-understood = The install server sent an answer this CD does not understand.
fail-other-computer = The install server sent a plan for another computer: nothing will be written.
fail-disks = This computer's disks cannot hold the system the server chose: nothing was written.
fail-install = The installation did not finish. This computer will not start the half-installed system; call for help with the detail below.
fail-no-restart = Installed, but the computer did not restart by itself: remove the CD and restart it.
offline-no-server = The install server cannot be reached: this computer installs from the CD or USB stick itself.

## A PC already installed, booted again from a CD or stick left in.
installed-already = This computer is already installed: nothing will be written to its disks.
installed-cd = The CD comes out and the computer restarts on its installed system.
installed-usb = Remove the USB stick: the computer then restarts on its installed system.
installed-usb-off = The USB stick is still in: the computer switches off. Remove the stick, then switch it on.

## The disk plan shown before anything is written.
plan-disk = Disk { $name } ({ $size })
plan-untouched = kept as is
plan-erased = will be ERASED
plan-partly = partly rewritten, your files are kept
plan-kept = kept
plan-note = Note: { $note }
why-boot-device = this is the install CD or stick
why-removable = removable media
why-excluded = excluded by the server
why-too-small = too small to be useful
why-holds-home = home with your files
warn-insecure-cd = This CD was made with lazare.insecure: it does not check that the install server is genuine. For lab tests only.
fail-tls-setup = This CD cannot set up its secure connection.
