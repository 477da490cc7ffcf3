# Die Sätze, die das Personal liest, auf Deutsch (siehe en.ftl).

## Startmenüs (ISOLINUX, GRUB, LILO): ohne Umlaute angezeigt.
menu-install = Installieren (löscht diesen PC)
menu-inventory = Nur Inventar (Hardware melden, nichts ändern)
menu-rescue = Rettungskonsole
menu-local = Von der lokalen Festplatte starten
menu-autoboot = Automatischer Start in # Sekunde{"{"},n{"}"}...
menu-tabmsg = [Tab] drücken, um die Optionen zu ändern

## Die ersten Zeilen auf dem Bildschirm.
banner-install = Dieser Computer wird eingerichtet. Sie können ihn allein lassen:
banner-install-2 = er startet von selbst neu, wenn er fertig ist.
banner-inventory = Die Daten dieses Computers werden an den Server geschickt;
banner-inventory-2 = danach schaltet er sich selbst aus.

## Die Schritte, jeweils mit ihrem Ergebnis.
step-hardware = Hardware wird gesucht
step-network = Verbindung mit dem Netzwerk
step-looking = Dieser Computer wird untersucht
step-server = Verbindung mit dem Installationsserver { $server }
step-done = fertig
step-drivers = fertig ({ $count ->
    [one] { $count } Treiber
   *[other] { $count } Treiber
})
step-not-yet = noch nicht
retry-in = Neuer Versuch in { $secs ->
    [one] { $secs } Sekunde
   *[other] { $secs } Sekunden
}...
not-approved = Der Installationsserver hat diesen Computer noch nicht angenommen: Bitten Sie den Freiwilligen, neue PCs im Dashboard anzunehmen. Neue Anfrage in 60 Sekunden.
fail-not-recognised = Der Installationsserver kennt bereits einen Computer mit dieser Identität: Bitten Sie den Freiwilligen, diesen PC im Dashboard neu anmelden zu lassen.
fail-replayed = Die Antwort des Installationsservers passt nicht zur Frage dieses Computers (eine alte, wiederholte Antwort?): Auf die Festplatten wird nichts geschrieben.
no-nic-driver = Diese CD hat keinen Treiber für die Netzwerkkarte mit der PCI-Kennung { $id }.
details-sent = Der Server hat die Daten dieses Computers. Er wird ausgeschaltet.
disks-used = Die Festplatten werden so verwendet:
countdown = Beginn in { $secs } s (jetzt ausschalten, um abzubrechen)...
starting = Los geht's.
technical-detail = Technisches Detail

## Was die Installation zeigt, während sie die Festplatte schreibt.
event-partition = Partitionstabellen werden geschrieben
event-format = Dateisysteme werden angelegt
event-download = System wird heruntergeladen und entpackt
event-configure = Das installierte System wird eingerichtet
event-installed = Installiert; Neustart in das neue System

## Wenn das Programm endet.
agent-finished = Das Installationsprogramm ist fertig.
choices = Buchstabe eingeben und Enter drücken:  r = nochmal   s = Konsole   b = Neustart   p = aus
no-shell = Diese CD hat keine Konsole (/bin/sh fehlt).
shell-start = Eine Konsole startet; mit `exit` geht es zurück.

## Fehler: ein Satz, den das Personal am Telefon vorlesen kann.
fail-agent-start = Das Installationsprogramm konnte nicht starten.
fail-agent-stopped = Das Installationsprogramm ist unerwartet stehen geblieben.
fail-restart = Neustart nicht möglich.
fail-power-off = Ausschalten nicht möglich.
fail-power-off-switch = Ausschalten nicht möglich; Sie können den Computer ausschalten.
fail-shell = Die Konsole ist nicht gestartet.
fail-settings = Die Einstellungen dieser CD sind falsch; die CD muss neu erstellt werden.
fail-network = Dieser Computer konnte sich nicht mit dem Netzwerk verbinden. Ist das Netzwerkkabel eingesteckt?
fail-server = Dieser Computer hat den Installationsserver nicht erreicht.
fail-kernel = Diese CD passt nicht zu ihrem eigenen Kernel; die CD muss neu erstellt werden.
fail-key = Der Serverschlüssel auf dieser CD ist beschädigt; die CD muss neu erstellt werden.
fail-refused = Die Antwort des Installationsservers ist nicht vom Server dieser CD signiert: nichts wird auf die Festplatten geschrieben.
fail-not-pinned = Der Server, der geantwortet hat, ist nicht der Installationsserver dieser CD (vielleicht schaltet sich etwas im Netzwerk dazwischen): Auf die Festplatten wird nichts geschrieben.
fail-not-understood = Der Installationsserver hat eine Antwort geschickt, die diese CD nicht versteht.
fail-other-computer = Der Installationsserver hat einen Plan für einen anderen Computer geschickt: nichts wird geschrieben.
fail-disks = Die Festplatten dieses Computers fassen das gewählte System nicht: nichts wurde geschrieben.
fail-install = Die Installation wurde nicht beendet. Dieser Computer startet das halb installierte System nicht; rufen Sie Hilfe und nennen Sie das Detail unten.
fail-no-restart = Installiert, aber der Computer ist nicht von selbst neu gestartet: CD entfernen und neu starten.
offline-no-server = Der Installationsserver ist nicht erreichbar: Dieser Computer installiert sich von der CD oder dem USB-Stick.

## Ein schon installierter PC, erneut von einer vergessenen CD oder einem Stick gestartet.
installed-already = Dieser Computer ist schon installiert: nichts wird auf seine Festplatten geschrieben.
installed-cd = Die CD wird ausgeworfen und der Computer startet sein installiertes System.
installed-usb = Ziehen Sie den USB-Stick ab: dann startet der Computer sein installiertes System.
installed-usb-off = Der USB-Stick steckt noch: der Computer schaltet sich aus. Stick abziehen, dann einschalten.

## Der Festplattenplan, gezeigt bevor etwas geschrieben wird.
plan-disk = Festplatte { $name } ({ $size })
plan-untouched = bleibt wie sie ist
plan-erased = wird GELÖSCHT
plan-partly = teilweise neu geschrieben, Ihre Dateien bleiben erhalten
plan-kept = bleibt
plan-note = Hinweis: { $note }
why-boot-device = das ist die Installations-CD oder der Stick
why-removable = Wechseldatenträger
why-excluded = vom Server ausgeschlossen
why-too-small = zu klein, um nützlich zu sein
why-holds-home = persönlicher Ordner mit Ihren Dateien
warn-insecure-cd = Diese CD wurde mit lazare.insecure erstellt: Sie prüft nicht, ob der Installationsserver echt ist. Nur für Tests.
fail-tls-setup = Diese CD kann ihre sichere Verbindung nicht aufbauen.
